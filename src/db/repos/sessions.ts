import { and, desc, eq, lt, sql } from 'drizzle-orm'
import { NotFoundError, StaleEpochError } from '../../errors.ts'
import type { Db } from '../handle.ts'
import { sessions, type SessionRow } from '../schema.ts'

export type NewSession = typeof sessions.$inferInsert

export async function insertSession(db: Db, values: NewSession): Promise<SessionRow | null> {
  const rows = await db.insert(sessions).values(values).onConflictDoNothing().returning()
  return rows[0] ?? null
}

export async function getSession(db: Db, id: string): Promise<SessionRow | null> {
  const rows = await db.select().from(sessions).where(eq(sessions.id, id))
  return rows[0] ?? null
}

export async function findSessionByExternalId(
  db: Db,
  workspaceId: string,
  externalId: string,
): Promise<SessionRow | null> {
  const rows = await db
    .select()
    .from(sessions)
    .where(and(eq(sessions.workspaceId, workspaceId), eq(sessions.externalId, externalId)))
  return rows[0] ?? null
}

export async function listSessions(
  db: Db,
  opts: { workspaceId?: string; before?: string; limit: number },
): Promise<SessionRow[]> {
  const filters = [
    opts.workspaceId ? eq(sessions.workspaceId, opts.workspaceId) : undefined,
    opts.before ? lt(sessions.id, opts.before) : undefined,
  ]
  return db
    .select()
    .from(sessions)
    .where(and(...filters))
    .orderBy(desc(sessions.id))
    .limit(opts.limit)
}

/** Takes the session's row lock for the rest of the transaction: appends to one session serialize. */
export async function lockSession(db: Db, id: string): Promise<{ epoch: number } | null> {
  const rows = await db
    .select({ epoch: sessions.epoch })
    .from(sessions)
    .where(eq(sessions.id, id))
    .for('update')
  return rows[0] ?? null
}

/**
 * Locks the session row (see lockSession) and fences a worker write: with `epoch`, it must be
 * the session's current epoch. Throws 404 for an unknown session, 409 for a stale epoch.
 */
export async function lockSessionAtEpoch(
  db: Db,
  id: string,
  epoch?: number,
): Promise<{ epoch: number }> {
  const session = await lockSession(db, id)
  if (!session) throw new NotFoundError(`session ${id} not found`)
  if (epoch !== undefined && epoch !== session.epoch)
    throw new StaleEpochError(epoch, session.epoch)
  return session
}

export async function bumpSessionEpoch(db: Db, id: string): Promise<number | null> {
  const rows = await db
    .update(sessions)
    .set({ epoch: sql`${sessions.epoch} + 1`, updatedAt: sql`now()` })
    .where(eq(sessions.id, id))
    .returning({ epoch: sessions.epoch })
  return rows[0]?.epoch ?? null
}

export async function setSessionStatus(db: Db, id: string, status: string): Promise<void> {
  await db
    .update(sessions)
    .set({ status, updatedAt: sql`now()` })
    .where(eq(sessions.id, id))
}
