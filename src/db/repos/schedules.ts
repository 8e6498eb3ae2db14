import { and, asc, desc, eq, lte, sql } from 'drizzle-orm'
import type { Db } from '../handle.ts'
import { scheduledTasks, scheduleRuns, type ScheduledTaskRow } from '../schema.ts'

export type NewScheduledTask = typeof scheduledTasks.$inferInsert

export async function insertScheduledTask(db: Db, values: NewScheduledTask) {
  return (await db.insert(scheduledTasks).values(values).returning())[0]!
}

export async function listScheduledTasks(db: Db, sessionId: string): Promise<ScheduledTaskRow[]> {
  return db
    .select()
    .from(scheduledTasks)
    .where(eq(scheduledTasks.sessionId, sessionId))
    .orderBy(desc(scheduledTasks.createdAt))
}

/** Cancels an active task (of `sessionId` only, when given); null when there is none. */
export async function cancelScheduledTask(
  db: Db,
  sessionId: string | null,
  id: string,
): Promise<ScheduledTaskRow | null> {
  const rows = await db
    .update(scheduledTasks)
    .set({ state: 'cancelled', nextRunAt: null })
    .where(
      and(
        eq(scheduledTasks.id, id),
        sessionId !== null ? eq(scheduledTasks.sessionId, sessionId) : undefined,
        eq(scheduledTasks.state, 'active'),
      ),
    )
    .returning()
  return rows[0] ?? null
}

export async function countActiveTasks(db: Db, sessionId: string): Promise<number> {
  const rows = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(scheduledTasks)
    .where(and(eq(scheduledTasks.sessionId, sessionId), eq(scheduledTasks.state, 'active')))
  return Number(rows[0]?.n ?? 0)
}

/** Tasks of all sessions, newest first; `before` is the id of the last task of a page. */
export async function listAllScheduledTasks(
  db: Db,
  opts: { workspaceId?: string; state?: string; before?: string; limit: number },
): Promise<ScheduledTaskRow[]> {
  return db
    .select()
    .from(scheduledTasks)
    .where(
      and(
        opts.workspaceId ? eq(scheduledTasks.workspaceId, opts.workspaceId) : undefined,
        opts.state ? eq(scheduledTasks.state, opts.state) : undefined,
        opts.before
          ? sql`(${scheduledTasks.createdAt}, ${scheduledTasks.id}) < (select created_at, id from scheduled_tasks where id = ${opts.before})`
          : undefined,
      ),
    )
    .orderBy(desc(scheduledTasks.createdAt), desc(scheduledTasks.id))
    .limit(opts.limit)
}

export async function getScheduledTask(db: Db, id: string): Promise<ScheduledTaskRow | null> {
  return (await db.select().from(scheduledTasks).where(eq(scheduledTasks.id, id)))[0] ?? null
}

/** Due task ids, oldest first (not locked: each is locked again when it fires). */
export async function listDueTaskIds(db: Db, limit: number): Promise<string[]> {
  const rows = await db
    .select({ id: scheduledTasks.id })
    .from(scheduledTasks)
    .where(and(eq(scheduledTasks.state, 'active'), lte(scheduledTasks.nextRunAt, sql`now()`)))
    .orderBy(asc(scheduledTasks.nextRunAt))
    .limit(limit)
  return rows.map((r) => r.id)
}

/** The task, locked for this transaction, if it is still due and no other broker holds it. */
export async function lockDueTask(db: Db, id: string): Promise<ScheduledTaskRow | null> {
  const rows = await db
    .select()
    .from(scheduledTasks)
    .where(
      and(
        eq(scheduledTasks.id, id),
        eq(scheduledTasks.state, 'active'),
        lte(scheduledTasks.nextRunAt, sql`now()`),
      ),
    )
    .for('update', { skipLocked: true })
  return rows[0] ?? null
}

/** Records a firing; false when this due time already fired (the unique key). */
export async function insertScheduleRun(
  db: Db,
  values: typeof scheduleRuns.$inferInsert,
): Promise<boolean> {
  const rows = await db.insert(scheduleRuns).values(values).onConflictDoNothing().returning()
  return rows.length > 0
}

export async function advanceScheduledTask(
  db: Db,
  id: string,
  nextRunAt: Date | null,
): Promise<void> {
  await db
    .update(scheduledTasks)
    .set({
      nextRunAt,
      state: nextRunAt ? 'active' : 'done',
      runs: sql`${scheduledTasks.runs} + 1`,
      lastRunAt: sql`now()`,
    })
    .where(eq(scheduledTasks.id, id))
}

export async function listScheduleRuns(db: Db, taskId: string) {
  return db
    .select()
    .from(scheduleRuns)
    .where(eq(scheduleRuns.taskId, taskId))
    .orderBy(asc(scheduleRuns.scheduledFor))
}
