import { and, asc, eq, gt, isNotNull, isNull } from 'drizzle-orm'
import type { Db } from '../handle.ts'
import { internalEvents, type InternalEventRow } from '../schema.ts'

export type NewInternalEvent = typeof internalEvents.$inferInsert

export async function insertInternalEvents(db: Db, rows: NewInternalEvent[]): Promise<void> {
  if (rows.length > 0) await db.insert(internalEvents).values(rows)
}

/** One page of a session's transcript entries: foreground ones, or subagents'. */
export async function listInternalEvents(
  db: Db,
  sessionId: string,
  opts: { subagents: boolean; afterId: number; limit: number },
): Promise<InternalEventRow[]> {
  return db
    .select()
    .from(internalEvents)
    .where(
      and(
        eq(internalEvents.sessionId, sessionId),
        gt(internalEvents.id, opts.afterId),
        opts.subagents ? isNotNull(internalEvents.agentId) : isNull(internalEvents.agentId),
      ),
    )
    .orderBy(asc(internalEvents.id))
    .limit(opts.limit)
}
