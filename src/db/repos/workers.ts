import { and, eq, isNull, lt, sql } from 'drizzle-orm'
import type { Db } from '../handle.ts'
import { sessionWorkers, type SessionWorkerRow } from '../schema.ts'

export async function insertWorker(db: Db, sessionId: string, epoch: number): Promise<void> {
  await db.insert(sessionWorkers).values({ sessionId, epoch }).onConflictDoNothing()
}

export async function getWorker(
  db: Db,
  sessionId: string,
  epoch: number,
): Promise<SessionWorkerRow | null> {
  const rows = await db
    .select()
    .from(sessionWorkers)
    .where(and(eq(sessionWorkers.sessionId, sessionId), eq(sessionWorkers.epoch, epoch)))
  return rows[0] ?? null
}

export interface WorkerPatch {
  state?: string
  externalMetadata?: Record<string, unknown>
  requiresActionDetails?: Record<string, unknown> | null
}

/** Merges a PUT /worker patch: fields replace, `external_metadata` merges key by key. */
export async function patchWorker(
  db: Db,
  sessionId: string,
  epoch: number,
  patch: WorkerPatch,
): Promise<void> {
  await db
    .update(sessionWorkers)
    .set({
      ...(patch.state !== undefined ? { state: patch.state } : {}),
      ...(patch.requiresActionDetails !== undefined
        ? { requiresActionDetails: patch.requiresActionDetails }
        : {}),
      ...(patch.externalMetadata !== undefined
        ? {
            externalMetadata: sql`${sessionWorkers.externalMetadata} || ${JSON.stringify(patch.externalMetadata)}::jsonb`,
          }
        : {}),
      updatedAt: sql`now()`,
    })
    .where(and(eq(sessionWorkers.sessionId, sessionId), eq(sessionWorkers.epoch, epoch)))
}

export async function touchWorkerHeartbeat(db: Db, sessionId: string, epoch: number) {
  await db
    .update(sessionWorkers)
    .set({ lastHeartbeatAt: sql`now()` })
    .where(and(eq(sessionWorkers.sessionId, sessionId), eq(sessionWorkers.epoch, epoch)))
}

/** Ends a worker generation: its token opens nothing any more. Answers whether it was open. */
export async function closeWorker(db: Db, sessionId: string, epoch: number): Promise<boolean> {
  const rows = await db
    .update(sessionWorkers)
    .set({ closedAt: sql`now()`, state: 'closed', updatedAt: sql`now()` })
    .where(
      and(
        eq(sessionWorkers.sessionId, sessionId),
        eq(sessionWorkers.epoch, epoch),
        isNull(sessionWorkers.closedAt),
      ),
    )
    .returning({ epoch: sessionWorkers.epoch })
  return rows.length > 0
}

/** Ends every generation of a session older than `epoch` (a new bridge supersedes them). */
export async function closeOlderWorkers(db: Db, sessionId: string, epoch: number): Promise<void> {
  await db
    .update(sessionWorkers)
    .set({ closedAt: sql`now()`, state: 'closed', updatedAt: sql`now()` })
    .where(
      and(
        eq(sessionWorkers.sessionId, sessionId),
        lt(sessionWorkers.epoch, epoch),
        isNull(sessionWorkers.closedAt),
      ),
    )
}
