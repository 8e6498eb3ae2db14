import { and, eq } from 'drizzle-orm'
import type { Db } from '../handle.ts'
import { warmWorkers } from '../schema.ts'

/** This broker keeps the session's worker alive until `until`. */
export async function markWarm(db: Db, sessionId: string, owner: string, until: Date) {
  await db
    .insert(warmWorkers)
    .values({ sessionId, owner, until })
    .onConflictDoUpdate({ target: warmWorkers.sessionId, set: { owner, until } })
}

/** The session's worker is no longer kept by this broker. */
export async function unmarkWarm(db: Db, sessionId: string, owner: string) {
  await db
    .delete(warmWorkers)
    .where(and(eq(warmWorkers.sessionId, sessionId), eq(warmWorkers.owner, owner)))
}
