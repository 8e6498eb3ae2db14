import type { Database } from '../db/handle.ts'
import { closeOlderWorkers, closeWorker } from '../db/repos/workers.ts'
import type { Logger } from '../log.ts'

/** Where replicas tell each other that a worker generation ended (Postgres only). */
export const GENERATIONS_CHANNEL = 'cc_broker_workers'

interface OpenStream {
  epoch: number
  end(): void
}

/**
 * Worker generations end: when their worker is gone (`close`) or a newer bridge supersedes them
 * (`superseded`). Their tokens then open nothing (the database row says so), and their open
 * event streams are ended on every replica, so a stale worker can neither write nor read.
 */
export function createGenerations(deps: { database: Database; origin: string; log: Logger }) {
  const { database } = deps
  const streams = new Map<string, Set<OpenStream>>()
  const watchers: ((sessionId: string, upTo: number, exact: boolean) => void)[] = []

  /** Ends this process's streams of `sessionId` whose epoch is `upTo` or older. */
  const endStreams = (sessionId: string, upTo: number, exact: boolean) => {
    for (const watch of watchers) watch(sessionId, upTo, exact)
    for (const s of streams.get(sessionId) ?? [])
      if (exact ? s.epoch === upTo : s.epoch <= upTo) s.end()
  }

  const announce = async (sessionId: string, epoch: number, exact: boolean) => {
    endStreams(sessionId, epoch, exact)
    if (database.driver !== 'postgres') return
    const payload = JSON.stringify({ s: sessionId, e: epoch, x: exact, o: deps.origin })
    await database.notify(GENERATIONS_CHANNEL, payload)
  }

  return {
    /** Registers an open worker stream; answers its unregistration. */
    track(sessionId: string, epoch: number, end: () => void): () => void {
      const entry: OpenStream = { epoch, end }
      let set = streams.get(sessionId)
      if (!set) streams.set(sessionId, (set = new Set()))
      set.add(entry)
      return () => {
        set.delete(entry)
        if (set.size === 0 && streams.get(sessionId) === set) streams.delete(sessionId)
      }
    },

    /** Told of every generation that ends, here or on another replica (warm workers stop). */
    onEnded(watch: (sessionId: string, upTo: number, exact: boolean) => void) {
      watchers.push(watch)
    },

    /** A new bridge made `epoch` current: every older generation ends. */
    async superseded(sessionId: string, epoch: number): Promise<void> {
      await closeOlderWorkers(database.db, sessionId, epoch)
      await announce(sessionId, epoch - 1, false)
    },

    /** The worker of `epoch` is gone: its generation ends. */
    async close(sessionId: string, epoch: number): Promise<void> {
      if (await closeWorker(database.db, sessionId, epoch)) await announce(sessionId, epoch, true)
    },

    /** Another replica's announcement (LISTEN). */
    onNotify(payload: string) {
      try {
        const { s, e, x, o } = JSON.parse(payload) as {
          s: string
          e: number
          x: boolean
          o: string
        }
        if (o !== deps.origin) endStreams(s, e, x)
      } catch {
        deps.log.warn('unreadable worker generation notification', { payload })
      }
    },
  }
}

export type Generations = ReturnType<typeof createGenerations>
