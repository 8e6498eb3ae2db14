import { Cron } from 'croner'
import type { Db } from '../db/handle.ts'
import {
  cancelScheduledTask,
  countActiveTasks,
  getScheduledTask,
  insertScheduledTask,
  listAllScheduledTasks,
  listScheduledTasks,
} from '../db/repos/schedules.ts'
import { lockSession } from '../db/repos/sessions.ts'
import type { ScheduledTaskRow } from '../db/schema.ts'
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts'

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

/** The shortest time between firings over the next few (a cron's gaps may vary). */
function shortestGapMs(cron: string, timezone: string, first: Date): number | null {
  const job = new Cron(cron, { timezone, paused: true })
  const runs = [first, ...job.nextRuns(8, first)]
  let shortest: number | null = null
  for (let i = 1; i < runs.length; i++) {
    const gap = runs[i]!.getTime() - runs[i - 1]!.getTime()
    if (shortest === null || gap < shortest) shortest = gap
  }
  return shortest
}

/** A task as callers and workers see it. */
export const taskJson = (t: ScheduledTaskRow) => ({
  task_id: t.id,
  session_id: t.sessionId,
  workspace_id: t.workspaceId,
  prompt: t.prompt,
  cron: t.cron,
  run_at: t.runAt?.toISOString() ?? null,
  timezone: t.timezone,
  state: t.state,
  next_run_at: t.nextRunAt?.toISOString() ?? null,
  runs: t.runs,
  last_run_at: t.lastRunAt?.toISOString() ?? null,
  created_at: t.createdAt.toISOString(),
})

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
export function createScheduleTasks(deps: {
  db: Db
  /** The shortest time between two firings of a cron task. */
  minIntervalSeconds: number
  /** Active tasks one session may have. */
  maxTasks: number
}) {
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
      const gapMs = shortestGapMs(input.cron, timezone, nextRunAt)
      if (gapMs !== null && gapMs < deps.minIntervalSeconds * 1000)
        throw new BadRequestError(
          `cron "${input.cron}" fires every ${gapMs / 1000} s, more often than the minimum ` +
            `interval of ${deps.minIntervalSeconds} s; give a slower schedule`,
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
    // Counted and inserted under the session's row lock, so concurrent creates keep the limit.
    return db.transaction(async (t) => {
      const session = await lockSession(t, input.sessionId)
      if (!session) throw new NotFoundError(`session ${input.sessionId} not found`)
      const active = await countActiveTasks(t, input.sessionId)
      if (active >= deps.maxTasks)
        throw new ConflictError(
          `this session already has ${active} active scheduled tasks (limit ${deps.maxTasks}); ` +
            'cancel one before creating another',
        )
      return insertScheduledTask(t, {
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
    })
  }

  return {
    create,
    list: (sessionId: string) => listScheduledTasks(db, sessionId),
    /** Tasks of every session, newest first (an operator's view). */
    listAll: (opts: { workspaceId?: string; state?: string; before?: string; limit: number }) =>
      listAllScheduledTasks(db, opts),
    get: (id: string) => getScheduledTask(db, id),
    /** Cancels an active task; `sessionId` limits it to that session's tasks (a worker's). */
    async cancel(sessionId: string | null, id: string) {
      const task = await cancelScheduledTask(db, sessionId, id)
      if (task) return task
      const existing = await getScheduledTask(db, id)
      if (!existing || (sessionId !== null && existing.sessionId !== sessionId))
        throw new NotFoundError(`no scheduled task ${id}${sessionId ? ' in this session' : ''}`)
      throw new ConflictError(`scheduled task ${id} is already ${existing.state}`)
    },
  }
}

export type ScheduleTasks = ReturnType<typeof createScheduleTasks>
