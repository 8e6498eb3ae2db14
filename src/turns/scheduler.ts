import type { Db } from '../db/handle.ts'
import {
  advanceScheduledTask,
  getScheduledTask,
  insertScheduleRun,
  listDueTaskIds,
  lockDueTask,
} from '../db/repos/schedules.ts'
import type { ScheduledTaskRow } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import { queueWebhookEvent } from '../webhooks/outbox.ts'
import type { TurnQueue } from './queue.ts'
import { nextCronRun } from './schedule-tasks.ts'

/** The next due time after a firing; a late firing (broker down) skips the missed ones. */
const nextAfter = (task: ScheduledTaskRow, firedFor: Date): Date | null =>
  task.cron
    ? nextCronRun(task.cron, task.timezone, new Date(Math.max(Date.now(), firedFor.getTime())))
    : null

class AlreadyFired extends Error {}

/**
 * Fires due scheduled tasks: a loop that enqueues a turn in the owning session when one is due.
 * A firing locks the task row (SKIP LOCKED), records the run under a unique (task, due time) key
 * and enqueues the turn in one transaction: it happens exactly once however many brokers run
 * the loop.
 */
export function createScheduler(deps: { db: Db; queue: TurnQueue; log: Logger; pollMs: number }) {
  const { db, log } = deps
  let timer: Timer | null = null
  let busy = false

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
            await queueWebhookEvent(tx, 'schedule.fired', task.workspaceId, {
              session_id: task.sessionId,
              turn_id: turnId,
              task_id: id,
              scheduled_for: scheduledFor.toISOString(),
            })
          },
        },
      )
      log.info('scheduled task fired', { taskId: id, turnId: turn.id, sessionId: task.sessionId })
    } catch (err) {
      if (err instanceof AlreadyFired) return
      log.warn('scheduled task could not enqueue its turn', {
        taskId: id,
        err: (err as Error).message,
      })
      await recordFailedRun(id, err as Error)
    }
  }

  // A firing that could not enqueue (queue full, session gone) still counts, with its error:
  // the task moves on instead of firing in a loop.
  async function recordFailedRun(id: string, err: Error) {
    await db.transaction(async (t) => {
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

export type Scheduler = ReturnType<typeof createScheduler>
