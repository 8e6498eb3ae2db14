import { and, asc, eq, gt, inArray, isNull, max, or, sql, type SQL } from 'drizzle-orm'
import type { Db } from '../handle.ts'
import { eventDeliveries, sessionEvents, type SessionEventRow } from '../schema.ts'

/** A row to append; its `attempt` may be a subquery, read in the insert statement itself. */
export type NewSessionEvent = Omit<typeof sessionEvents.$inferInsert, 'attempt'> & {
  attempt?: number | SQL | null
}

/** Inserts in order; rows whose (session, event id) already exist are skipped, not returned. */
export async function insertEvents(db: Db, rows: NewSessionEvent[]): Promise<SessionEventRow[]> {
  if (rows.length === 0) return []
  const inserted = await db
    .insert(sessionEvents)
    .values(rows)
    .onConflictDoNothing({ target: [sessionEvents.sessionId, sessionEvents.eventId] })
    .returning()
  return inserted.sort((a, b) => a.seq - b.seq)
}

export async function maxEventSeq(db: Db, sessionId: string): Promise<number> {
  const rows = await db
    .select({ seq: max(sessionEvents.seq) })
    .from(sessionEvents)
    .where(eq(sessionEvents.sessionId, sessionId))
  return Number(rows[0]?.seq ?? 0)
}

export interface EventFilter {
  source?: string
  turnId?: string
  /** Events of this turn or of no turn. */
  turnOrUntagged?: string
}

const turnOrUntagged = (turnId: string | undefined) =>
  turnId ? or(eq(sessionEvents.turnId, turnId), isNull(sessionEvents.turnId)) : undefined

export async function listEventsSince(
  db: Db,
  sessionId: string,
  since: number,
  limit: number,
  filter: EventFilter = {},
): Promise<SessionEventRow[]> {
  const conditions: (SQL | undefined)[] = [
    eq(sessionEvents.sessionId, sessionId),
    gt(sessionEvents.seq, since),
    filter.source ? eq(sessionEvents.source, filter.source) : undefined,
    filter.turnId ? eq(sessionEvents.turnId, filter.turnId) : undefined,
    turnOrUntagged(filter.turnOrUntagged),
  ]
  return db
    .select()
    .from(sessionEvents)
    .where(and(...conditions))
    .orderBy(asc(sessionEvents.seq))
    .limit(limit)
}

export async function findEventsByIds(
  db: Db,
  sessionId: string,
  eventIds: string[],
): Promise<SessionEventRow[]> {
  if (eventIds.length === 0) return []
  return db
    .select()
    .from(sessionEvents)
    .where(and(eq(sessionEvents.sessionId, sessionId), inArray(sessionEvents.eventId, eventIds)))
}

/**
 * Client events a worker that starts without a cursor still has to see (worker/PROTOCOL.md §3): user
 * messages no worker has processed, and other client events no worker has received. Whatever an
 * earlier worker consumed is not replayed.
 */
export async function listUnconsumedClientEvents(
  db: Db,
  sessionId: string,
  afterSeq: number,
  limit: number,
  turnId?: string,
): Promise<SessionEventRow[]> {
  return db
    .select({ e: sessionEvents })
    .from(sessionEvents)
    .leftJoin(
      eventDeliveries,
      and(
        eq(eventDeliveries.sessionId, sessionEvents.sessionId),
        eq(eventDeliveries.eventId, sessionEvents.eventId),
      ),
    )
    .where(
      and(
        eq(sessionEvents.sessionId, sessionId),
        eq(sessionEvents.source, 'client'),
        gt(sessionEvents.seq, afterSeq),
        turnOrUntagged(turnId),
        sql`(${eventDeliveries.status} is null or (${sessionEvents.eventType} = 'user' and ${eventDeliveries.status} <> 'processed'))`,
      ),
    )
    .orderBy(asc(sessionEvents.seq))
    .limit(limit)
    .then((rows) => rows.map((r) => r.e))
}

const deliveryRank = sql`case excluded.status when 'processed' then 3 when 'processing' then 2 else 1 end`
const currentRank = sql`case ${eventDeliveries.status} when 'processed' then 3 when 'processing' then 2 else 1 end`

/** Records delivery reports; a status never moves backwards (received < processing < processed). */
export async function upsertDeliveries(
  db: Db,
  sessionId: string,
  epoch: number,
  updates: { eventId: string; status: string }[],
): Promise<void> {
  if (updates.length === 0) return
  // One row per event id: the last report in the batch wins before the rank check.
  const byId = new Map(updates.map((u) => [u.eventId, u.status]))
  await db
    .insert(eventDeliveries)
    .values([...byId].map(([eventId, status]) => ({ sessionId, eventId, status, epoch })))
    .onConflictDoUpdate({
      target: [eventDeliveries.sessionId, eventDeliveries.eventId],
      set: {
        status: sql`case when ${deliveryRank} >= ${currentRank} then excluded.status else ${eventDeliveries.status} end`,
        epoch: sql`excluded.epoch`,
        updatedAt: sql`now()`,
      },
    })
}

export async function listDeliveries(db: Db, sessionId: string) {
  return db.select().from(eventDeliveries).where(eq(eventDeliveries.sessionId, sessionId))
}
