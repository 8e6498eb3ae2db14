import { sql } from 'drizzle-orm'
import type { Database, Db } from '../db/handle.ts'

/**
 * One holder per workspace at a time: two sessions of a workspace never interleave their
 * pushes. In-process by a promise chain; across brokers (Postgres) by a transaction-scoped
 * advisory lock, held on one pooled connection for as long as `fn` runs. PGlite is one process
 * per data directory, and its single connection must not sit in a long transaction.
 */
export function createWorkspaceLock(database: Database) {
  const tails = new Map<string, Promise<unknown>>()

  const local = <T>(workspaceId: string, fn: () => Promise<T>): Promise<T> => {
    const prev = tails.get(workspaceId) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.catch(() => {})
    tails.set(workspaceId, tail)
    void tail.then(() => {
      if (tails.get(workspaceId) === tail) tails.delete(workspaceId)
    })
    return run
  }

  return <T>(workspaceId: string, fn: () => Promise<T>): Promise<T> =>
    local(workspaceId, () =>
      database.driver === 'pglite'
        ? fn()
        : database.db.transaction(async (tx) => {
            await tx.execute(
              sql`select pg_advisory_xact_lock(hashtextextended(${`cc-broker/workspace/${workspaceId}`}, 0))`,
            )
            return fn()
          }),
    )
}

export type WorkspaceLock = ReturnType<typeof createWorkspaceLock>
