import { Cron } from 'croner'
import type { Db } from '../db/handle.ts'
import {
  cancelScheduledTask,
  insertScheduledTask,
  listScheduledTasks,
} from '../db/repos/schedules.ts'
import type { ScheduledTaskRow } from '../db/schema.ts'
import { BadRequestError, NotFoundError } from '../errors.ts'

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
    throw new BadRequestError(
      `timezone "${timezone}" is not an IANA time zone (e.g. Europe/Berlin)`,
    )
  }
}

const ISO_WITH_OFFSET = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/i
const PAST_GRACE_MS = 60_000

const newTaskId = () => `task_${Bun.randomUUIDv7().replaceAll('-', '')}`

/**
 * A session's scheduled tasks, in the database only: create (checked), list and cancel. The
 * scheduler (scheduler.ts) fires them.
 */
export function createScheduleTasks(deps: { db: Db }) {
  const { db } = deps

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

  return {
    create,
    list: (sessionId: string) => listScheduledTasks(db, sessionId),
    async cancel(sessionId: string, id: string) {
      const task = await cancelScheduledTask(db, sessionId, id)
      if (!task) throw new NotFoundError(`no active scheduled task ${id} in this session`)
      return task
    },
  }
}

export type ScheduleTasks = ReturnType<typeof createScheduleTasks>
