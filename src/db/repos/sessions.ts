import { and, desc, eq, lt, sql } from 'drizzle-orm'
import { GenerationClosedError, NotFoundError, StaleEpochError } from '../../errors.ts'
import type { Db } from '../handle.ts'
import { sessions, sessionWorkers, type SessionRow } from '../schema.ts'

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

/** Sessions, newest created first; `before` is the id of the last session of a page. */
export async function listSessions(
  db: Db,
  opts: { workspaceId?: string; before?: string; limit: number },
): Promise<SessionRow[]> {
  const filters = [
    opts.workspaceId ? eq(sessions.workspaceId, opts.workspaceId) : undefined,
    opts.before
      ? sql`(${sessions.createdAt}, ${sessions.id}) < (select created_at, id from sessions where id = ${opts.before})`
      : undefined,
  ]
  return db
    .select()
    .from(sessions)
    .where(and(...filters))
    .orderBy(desc(sessions.createdAt), desc(sessions.id))
    .limit(opts.limit)
}

/** What an append needs to know of its session, read under the row lock. */
export type LockedSession = Pick<SessionRow, 'epoch' | 'workspaceId' | 'claudeSessionId'>

/** Takes the session's row lock for the rest of the transaction: appends to one session serialize. */
export async function lockSession(db: Db, id: string): Promise<LockedSession | null> {
  const rows = await db
    .select({
      epoch: sessions.epoch,
      workspaceId: sessions.workspaceId,
      claudeSessionId: sessions.claudeSessionId,
    })
    .from(sessions)
    .where(eq(sessions.id, id))
    .for('update')
  return rows[0] ?? null
}

/**
 * Locks the session row (see lockSession) and fences a worker write: with `epoch`, it must be
 * the session's current epoch and that generation must not have ended. Throws 404 for an
 * unknown session, 409 for a stale epoch, 401 for an ended generation.
 */
export async function lockSessionAtEpoch(
  db: Db,
  id: string,
  epoch?: number,
): Promise<LockedSession> {
  const session = await lockSession(db, id)
  if (!session) throw new NotFoundError(`session ${id} not found`)
  if (epoch === undefined) return session
  if (epoch !== session.epoch) throw new StaleEpochError(epoch, session.epoch)
  const worker = await db
    .select({ closedAt: sessionWorkers.closedAt })
    .from(sessionWorkers)
    .where(and(eq(sessionWorkers.sessionId, id), eq(sessionWorkers.epoch, epoch)))
  if (worker[0]?.closedAt) throw new GenerationClosedError(epoch)
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
