import { and, asc, desc, eq, inArray, lt, sql } from 'drizzle-orm'
import type { Db } from '../handle.ts'
import { turns, type TurnRow } from '../schema.ts'

export type NewTurn = typeof turns.$inferInsert

export async function insertTurn(db: Db, values: NewTurn): Promise<TurnRow> {
  // clock_timestamp, not now(): turns enqueued in one session keep the order of their commits.
  const rows = await db
    .insert(turns)
    .values({ ...values, enqueuedAt: sql`clock_timestamp()` })
    .returning()
  return rows[0]!
}

export async function getTurn(db: Db, id: string): Promise<TurnRow | null> {
  const rows = await db.select().from(turns).where(eq(turns.id, id))
  return rows[0] ?? null
}

export async function countQueuedTurns(db: Db, sessionId: string): Promise<number> {
  const rows = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(turns)
    .where(and(eq(turns.sessionId, sessionId), eq(turns.state, 'queued')))
  return Number(rows[0]?.n ?? 0)
}

/** Turns waiting in the queue, all sessions. */
export async function countAllQueuedTurns(db: Db): Promise<number> {
  const rows = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(turns)
    .where(eq(turns.state, 'queued'))
  return Number(rows[0]?.n ?? 0)
}

/** A session's turns, newest enqueued first; `before` is the id of the last turn of a page. */
export async function listSessionTurns(
  db: Db,
  sessionId: string,
  opts: { before?: string; limit: number },
): Promise<TurnRow[]> {
  const after = opts.before
    ? sql`(${turns.enqueuedAt}, ${turns.id}) < (select enqueued_at, id from turns where id = ${opts.before})`
    : undefined
  return db
    .select()
    .from(turns)
    .where(and(eq(turns.sessionId, sessionId), after))
    .orderBy(desc(turns.enqueuedAt), desc(turns.id))
    .limit(opts.limit)
}

/**
 * Claims the oldest queued turn of a session that has no running turn, and marks it running
 * under a lease. The session row is locked SKIP LOCKED, so two brokers never start two turns
 * of one session, and a session busy with an append is simply tried again later.
 */
export async function claimNextTurn(
  db: Db,
  owner: string,
  leaseMs: number,
  /** How long a turn of a session another broker keeps warm is left to that broker. */
  warmPreferenceMs = 0,
): Promise<TurnRow | null> {
  // One round trip: the candidate is an InitPlan (evaluated once), locked SKIP LOCKED.
  const rows = await db
    .update(turns)
    .set({
      state: 'running',
      leaseOwner: owner,
      leaseExpiresAt: sql`clock_timestamp() + ${`${leaseMs} milliseconds`}::interval`,
      startedAt: sql`clock_timestamp()`,
      attempts: sql`${turns.attempts} + 1`,
    })
    .where(
      sql`${turns.id} = (
        select t.id
        from turns t
        join sessions s on s.id = t.session_id
        where t.state = 'queued'
          and not exists (
            select 1 from turns r where r.session_id = t.session_id and r.state = 'running')
          and not exists (
            select 1 from turns e
            where e.session_id = t.session_id and e.state = 'queued'
              and (e.enqueued_at, e.id) < (t.enqueued_at, t.id))
          and not exists (
            select 1 from warm_workers w
            where w.session_id = t.session_id and w.owner <> ${owner}
              and w.until > clock_timestamp()
              and t.enqueued_at > clock_timestamp() - ${`${warmPreferenceMs} milliseconds`}::interval)
        order by t.enqueued_at, t.id
        limit 1
        for update of t, s skip locked)`,
    )
    .returning()
  return rows[0] ?? null
}

/** Extends the leases this broker holds; answers the running turns that are still its own. */
export async function renewLeases(
  db: Db,
  owner: string,
  ids: string[],
  leaseMs: number,
): Promise<{ id: string; cancelRequested: boolean }[]> {
  if (ids.length === 0) return []
  return db
    .update(turns)
    .set({ leaseExpiresAt: sql`clock_timestamp() + ${`${leaseMs} milliseconds`}::interval` })
    .where(and(inArray(turns.id, ids), eq(turns.leaseOwner, owner), eq(turns.state, 'running')))
    .returning({ id: turns.id, cancelRequested: turns.cancelRequested })
}

const abandoned = (deadOwners: string[]) =>
  and(
    eq(turns.state, 'running'),
    deadOwners.length > 0
      ? sql`(${turns.leaseExpiresAt} < clock_timestamp() or ${turns.leaseOwner} in ${deadOwners})`
      : sql`${turns.leaseExpiresAt} < clock_timestamp()`,
  )

/** Running turns whose lease ran out, or whose owner is among `deadOwners`, oldest first. */
export async function listAbandonedTurnIds(
  db: Db,
  deadOwners: string[],
): Promise<{ id: string; sessionId: string }[]> {
  return db
    .select({ id: turns.id, sessionId: turns.sessionId })
    .from(turns)
    .where(abandoned(deadOwners))
    .orderBy(asc(turns.enqueuedAt))
}

/** The turn, locked for recovery, if it is still abandoned and no other broker recovers it. */
export async function lockAbandonedTurn(
  db: Db,
  id: string,
  deadOwners: string[],
): Promise<TurnRow | null> {
  const rows = await db
    .select()
    .from(turns)
    .where(and(eq(turns.id, id), abandoned(deadOwners)))
    .for('update', { skipLocked: true })
  return rows[0] ?? null
}

export async function listRunningOwners(db: Db): Promise<string[]> {
  const rows = await db
    .selectDistinct({ owner: turns.leaseOwner })
    .from(turns)
    .where(eq(turns.state, 'running'))
  return rows.map((r) => r.owner).filter((o): o is string => o !== null)
}

export async function updateTurn(
  db: Db,
  id: string,
  values: Partial<NewTurn>,
  where?: { state?: string; owner?: string },
): Promise<TurnRow | null> {
  const rows = await db
    .update(turns)
    .set(values)
    .where(
      and(
        eq(turns.id, id),
        where?.state ? eq(turns.state, where.state) : undefined,
        where?.owner ? eq(turns.leaseOwner, where.owner) : undefined,
      ),
    )
    .returning()
  return rows[0] ?? null
}

export async function findTurnByEpoch(
  db: Db,
  sessionId: string,
  epoch: number,
): Promise<string | null> {
  const rows = await db
    .select({ id: turns.id })
    .from(turns)
    .where(and(eq(turns.sessionId, sessionId), eq(turns.workerEpoch, epoch)))
  return rows[0]?.id ?? null
}
