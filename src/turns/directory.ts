import type { Db } from '../db/handle.ts'
import { findTurnByEpoch } from '../db/repos/turns.ts'

/**
 * Which turn a worker epoch serves, so the events a worker posts are tagged with their turn.
 * Filled by the executor when it starts a worker; other replicas (a worker behind a load
 * balancer) find it in the database.
 */
export function createTurnDirectory(db: Db, maxEntries = 10_000) {
  const known = new Map<string, string | null>()
  const key = (sessionId: string, epoch: number) => `${sessionId}#${epoch}`
  const remember = (k: string, turnId: string | null) => {
    known.set(k, turnId)
    if (known.size > maxEntries) known.delete(known.keys().next().value!)
  }
  return {
    register: (sessionId: string, epoch: number, turnId: string) =>
      remember(key(sessionId, epoch), turnId),
    /** What this replica knows, without asking the database. */
    known: (sessionId: string, epoch: number): string | undefined =>
      known.get(key(sessionId, epoch)) ?? undefined,
    async lookup(sessionId: string, epoch: number): Promise<string | null> {
      const k = key(sessionId, epoch)
      if (known.has(k)) return known.get(k)!
      const turnId = await findTurnByEpoch(db, sessionId, epoch)
      // Only positive answers are cached: a turn may register this epoch a moment later.
      if (turnId) remember(k, turnId)
      return turnId
    },
  }
}

export type TurnDirectory = ReturnType<typeof createTurnDirectory>
