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
  /** Leave out ephemeral events (partial messages): a replay shows whole messages only. */
  durable?: boolean
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
    filter.durable ? eq(sessionEvents.ephemeral, false) : undefined,
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

/** Drops a turn's ephemeral events (partial messages) once its whole messages are stored. */
export async function deleteEphemeralEvents(db: Db, sessionId: string, turnId: string) {
  await db
    .delete(sessionEvents)
    .where(
      and(
        eq(sessionEvents.sessionId, sessionId),
        eq(sessionEvents.turnId, turnId),
        eq(sessionEvents.ephemeral, true),
      ),
    )
}

/** One event of a one-statement append (see appendEvents). */
export interface AppendRow {
  eventId: string
  eventType: string
  payload: Record<string, unknown>
  ephemeral: boolean
  /** Its turn's attempt when it is not the turn's current one. */
  attempt: number | null
}

export type AppendOutcome =
  | { kind: 'appended'; prevSeq: number; inserted: SessionEventRow[] }
  | { kind: 'missing' }
  | { kind: 'stale'; sessionEpoch: number }
  | { kind: 'closed' }

/**
 * The one-statement append: the session row locked (so a session's seqs are committed in
 * order), the epoch fence and the generation check, the turn of the epoch when asked, the
 * insert (skipping event ids already stored) and the NOTIFY, as common table expressions.
 * $1 session, $2 epoch (null: no fence), $3 the batch as JSON, $4 source, $5 turn id,
 * $6 look the turn up by epoch, $7 NOTIFY channel (null: none), $8 origin.
 */
const APPEND_SQL = `
with s as (
  select s.epoch,
    (select w.closed_at from session_workers w
      where w.session_id = s.id and w.epoch = s.epoch) is not null as closed
  from sessions s where s.id = $1 for update of s
),
ok as (
  select 1 from s where $2::int is null or (s.epoch = $2::int and not s.closed)
),
prev as (
  select coalesce(max(seq), 0)::bigint as seq from session_events where session_id = $1
),
t as (
  select coalesce($5::text, case when $6::boolean then (
    select id from turns where session_id = $1 and worker_epoch = $2::int limit 1
  ) end) as id
),
ins as (
  insert into session_events
    (session_id, event_id, event_type, source, epoch, payload, ephemeral, turn_id, attempt)
  select $1, r.event_id, r.event_type, $4, coalesce($2::int, 0), r.payload, r.ephemeral,
    (select id from t), coalesce(r.attempt, (select attempts from turns where id = (select id from t)))
  from jsonb_to_recordset($3::jsonb)
    as r(n int, event_id text, event_type text, payload jsonb, ephemeral boolean, attempt int)
  where exists (select 1 from ok)
  order by r.n
  on conflict (session_id, event_id) do nothing
  returning seq, event_id, attempt, created_at
),
note as (
  select pg_notify($7::text, json_build_object('s', $1::text, 'l', max(seq), 'o', $8::text)::text)
  from ins where $7::text is not null having count(*) > 0
)
select (select epoch from s) as session_epoch, (select closed from s) as closed,
  (select id from t) as turn_id, (select seq from prev) as prev_seq,
  (select count(*) from note) as notified,
  coalesce(
    (select json_agg(json_build_array(seq, event_id, attempt, created_at) order by seq) from ins),
    '[]'::json
  ) as inserted
`

/**
 * Appends a batch in one statement (one round trip, its own transaction; see APPEND_SQL).
 * What was refused is answered, not thrown, and nothing is stored then.
 */
export async function appendEvents(
  query: (text: string, params: unknown[]) => Promise<Record<string, unknown>[]>,
  a: {
    sessionId: string
    source: string
    /** Worker writes: the epoch the batch claims; it must be the session's, and open. */
    epoch: number | null
    turnId: string | null
    /** Without `turnId`: the turn is the one the epoch serves (a worker's), found here. */
    turnOfEpoch?: boolean
    rows: AppendRow[]
    notify: { channel: string; origin: string } | null
  },
): Promise<AppendOutcome> {
  const batch = JSON.stringify(
    a.rows.map((r, n) => ({
      n,
      event_id: r.eventId,
      event_type: r.eventType,
      payload: r.payload,
      ephemeral: r.ephemeral,
      attempt: r.attempt,
    })),
  )
  const epoch = a.epoch
  const [row] = await query(APPEND_SQL, [
    a.sessionId,
    epoch,
    batch,
    a.source,
    a.turnId,
    a.turnOfEpoch === true,
    a.notify?.channel ?? null,
    a.notify?.origin ?? null,
  ])
  if (!row || row.session_epoch === null || row.session_epoch === undefined)
    return { kind: 'missing' }
  const sessionEpoch = Number(row.session_epoch)
  if (epoch !== null && sessionEpoch !== epoch) return { kind: 'stale', sessionEpoch }
  if (epoch !== null && row.closed === true) return { kind: 'closed' }
  // Only what the database decided comes back; the rest of each row is what was sent.
  const decided = (typeof row.inserted === 'string' ? JSON.parse(row.inserted) : row.inserted) as [
    number,
    string,
    number | null,
    string,
  ][]
  const sent = new Map(a.rows.map((r) => [r.eventId, r]))
  const turnId = (row.turn_id as string | null) ?? null
  return {
    kind: 'appended',
    prevSeq: Number(row.prev_seq),
    inserted: decided.map(([seq, eventId, attempt, createdAt]) => {
      const r = sent.get(eventId)!
      return {
        seq: Number(seq),
        sessionId: a.sessionId,
        eventId,
        eventType: r.eventType,
        source: a.source,
        epoch: epoch ?? 0,
        payload: r.payload,
        ephemeral: r.ephemeral,
        turnId,
        attempt,
        createdAt: new Date(createdAt),
      }
    }),
  }
}
