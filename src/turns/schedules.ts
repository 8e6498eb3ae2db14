import { Cron } from 'croner'
import type { Db } from '../db/open.ts'
import {
  advanceScheduledTask,
  cancelScheduledTask,
  getScheduledTask,
  insertScheduledTask,
  insertScheduleRun,
  listDueTaskIds,
  listScheduledTasks,
  lockDueTask,
} from '../db/repos/schedules.ts'
import type { ScheduledTaskRow } from '../db/schema.ts'
import { BadRequestError, NotFoundError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { TurnQueue } from './queue.ts'

export interface NewTask {
  sessionId: string
  workspaceId: string
  prompt: string
  cron?: string
  runAt?: string
  timezone?: string
  imChannelId?: string
  imUserId?: string
  createdByTurn?: string
}

/** The next time a cron expression fires after `after`, in its time zone (croner). */
export function nextCronRun(cron: string, timezone: string, after: Date): Date | null {
  return new Cron(cron, { timezone, paused: true }).nextRun(after)
}

function checkTimezone(timezone: string) {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone })
  } catch {
    throw new BadRequestError(`timezone "${timezone}" is not an IANA time zone (e.g. Europe/Berlin)`)
  }
}

/** The next due time after a firing; a late firing (broker down) skips the missed ones. */
const nextAfter = (task: ScheduledTaskRow, firedFor: Date): Date | null =>
  task.cron
    ? nextCronRun(task.cron, task.timezone, new Date(Math.max(Date.now(), firedFor.getTime())))
    : null

class AlreadyFired extends Error {}

const ISO_WITH_OFFSET = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/i
const PAST_GRACE_MS = 60_000

const newTaskId = () => `task_${Bun.randomUUIDv7().replaceAll('-', '')}`

/**
 * Scheduled turns: tasks persisted per session, and a loop that enqueues a turn in the owning
 * session when one is due. A firing locks the task row (SKIP LOCKED), records the run under a
 * unique (task, due time) key and enqueues the turn in one transaction: it happens exactly once
 * however many brokers run the loop.
 */
export function createSchedules(deps: { db: Db; queue: TurnQueue; log: Logger; pollMs: number }) {
  const { db, log } = deps
  let timer: Timer | null = null
  let busy = false

  async function create(input: NewTask): Promise<ScheduledTaskRow> {
    const timezone = input.timezone ?? 'UTC'
    checkTimezone(timezone)
    if (!input.prompt.trim()) throw new BadRequestError('prompt: give the message the task sends')
    if ((input.cron ? 1 : 0) + (input.runAt ? 1 : 0) !== 1)
      throw new BadRequestError('give exactly one of cron (repeating) or run_at (one time)')
    let nextRunAt: Date | null
    let runAt: Date | null = null
    if (input.cron) {
      try {
        nextRunAt = nextCronRun(input.cron, timezone, new Date())
      } catch (err) {
        throw new BadRequestError(
          `cron "${input.cron}" is invalid (${(err as Error).message}); give five fields, ` +
            'minute hour day-of-month month day-of-week, e.g. "0 9 * * 1-5" for 09:00 on weekdays',
        )
      }
      if (!nextRunAt)
        throw new BadRequestError(
          `cron "${input.cron}" never fires again; give one with a future time`,
        )
    } else {
      // Without an offset, Date would read it in the broker's own zone, not the caller's.
      runAt = ISO_WITH_OFFSET.test(input.runAt!) ? new Date(input.runAt!) : new Date(NaN)
      if (Number.isNaN(runAt.getTime()))
        throw new BadRequestError(
          `run_at "${input.runAt}" is not an ISO 8601 time with Z or an offset ` +
            '(e.g. 2026-12-01T09:00:00Z or 2026-12-01T10:00:00+01:00)',
        )
      // A wrong year or day would otherwise fire at once instead of failing.
      if (runAt.getTime() < Date.now() - PAST_GRACE_MS)
        throw new BadRequestError(
          `run_at ${runAt.toISOString()} is in the past (now ${new Date().toISOString()}); ` +
            'give a future time',
        )
      nextRunAt = runAt
    }
    return insertScheduledTask(db, {
      id: newTaskId(),
      sessionId: input.sessionId,
      workspaceId: input.workspaceId,
      prompt: input.prompt,
      cron: input.cron ?? null,
      runAt,
      timezone,
      nextRunAt,
      imChannelId: input.imChannelId ?? null,
      imUserId: input.imUserId ?? null,
      createdByTurn: input.createdByTurn ?? null,
    })
  }

  async function fire(id: string) {
    const task = await getScheduledTask(db, id)
    if (!task || task.state !== 'active') return
    try {
      const turn = await deps.queue.enqueue(
        {
          sessionId: task.sessionId,
          workspaceId: task.workspaceId,
          userMessage: task.prompt,
          imChannelId: task.imChannelId ?? undefined,
          imUserId: task.imUserId ?? undefined,
          metadata: { scheduled_task_id: task.id },
          source: 'schedule',
        },
        {
          within: async (tx, turnId) => {
            const locked = await lockDueTask(tx, id)
            if (!locked) throw new AlreadyFired()
            const scheduledFor = locked.nextRunAt!
            if (!(await insertScheduleRun(tx, { taskId: id, scheduledFor, turnId })))
              throw new AlreadyFired()
            await advanceScheduledTask(tx, id, nextAfter(locked, scheduledFor))
          },
        },
      )
      log.info('scheduled task fired', { taskId: id, turnId: turn.id, sessionId: task.sessionId })
    } catch (err) {
      if (err instanceof AlreadyFired) return
      log.warn('scheduled task could not enqueue its turn', { taskId: id, err: (err as Error).message })
      await recordFailedRun(id, err as Error)
    }
  }

  // A firing that could not enqueue (queue full, session gone) still counts, with its error:
  // the task moves on instead of firing in a loop.
  async function recordFailedRun(id: string, err: Error) {
    await db.transaction(async (tx) => {
      const t = tx as unknown as Db
      const task = await lockDueTask(t, id)
      if (!task) return
      const scheduledFor = task.nextRunAt!
      await advanceScheduledTask(t, id, nextAfter(task, scheduledFor))
      await insertScheduleRun(t, { taskId: id, scheduledFor, error: err.message })
    })
  }

  async function tick() {
    if (busy) return
    busy = true
    try {
      for (const id of await listDueTaskIds(db, 50)) await fire(id)
    } catch (err) {
      log.error('scheduler tick failed', { err })
    } finally {
      busy = false
    }
  }

  return {
    create,
    list: (sessionId: string) => listScheduledTasks(db, sessionId),
    async cancel(sessionId: string, id: string) {
      const task = await cancelScheduledTask(db, sessionId, id)
      if (!task) throw new NotFoundError(`no active scheduled task ${id} in this session`)
      return task
    },
    tick,
    start() {
      timer = setInterval(() => void tick(), deps.pollMs)
    },
    stop() {
      if (timer) clearInterval(timer)
      timer = null
    },
  }
}

export type Schedules = ReturnType<typeof createSchedules>
