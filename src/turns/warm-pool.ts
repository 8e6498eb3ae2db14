import type { Db } from '../db/handle.ts'
import { markWarm, unmarkWarm } from '../db/repos/warm-workers.ts'
import type { Logger } from '../log.ts'

/** A live worker process between two turns of its session. */
export interface IdleWorker {
  readonly sessionId: string
  readonly epoch: number
  /** Resolves once the process is gone. */
  readonly exited: Promise<unknown>
  /** Stops the process if it still runs and frees what it holds (generation, MCP, directories). */
  retire(why: string): Promise<void>
}

/**
 * The workers this broker keeps alive between turns, at most `idleMs` each. The least recently
 * used one is stopped first when a new process needs its slot; a worker that exits while idle is
 * let go. The database says which broker keeps a session warm, so other replicas leave that
 * session's next turn to it for a moment.
 */
export function createWarmPool<W extends IdleWorker>(deps: {
  db: Db
  owner: string
  idleMs: number
  log: Logger
}) {
  // Insertion order is the order of last use: the first entry is the least recently used.
  const idle = new Map<string, { worker: W; timer: Timer }>()
  // Workers being stopped: the session's next worker waits, for it reuses the same directories.
  const stopping = new Map<string, Promise<void>>()
  let closed = false

  const take = (sessionId: string): W | null => {
    const entry = idle.get(sessionId)
    if (!entry) return null
    clearTimeout(entry.timer)
    idle.delete(sessionId)
    return entry.worker
  }

  const retire = async (worker: W, why: string) => {
    deps.log.debug('stopping an idle worker', { sessionId: worker.sessionId, why })
    await unmarkWarm(deps.db, worker.sessionId, deps.owner).catch(() => {})
    await worker
      .retire(why)
      .catch((err) =>
        deps.log.error('could not stop an idle worker', { err, sessionId: worker.sessionId }),
      )
  }

  const retireSession = async (sessionId: string, why: string) => {
    const worker = take(sessionId)
    if (!worker) return
    const done = retire(worker, why).finally(() => {
      if (stopping.get(sessionId) === done) stopping.delete(sessionId)
    })
    stopping.set(sessionId, done)
    await done
  }

  return {
    enabled: deps.idleMs > 0,
    size: () => idle.size,
    has: (sessionId: string) => idle.has(sessionId),

    /** The session's idle worker, now no longer idle; null when there is none. */
    take,

    /** Resolves once no worker of the session is being stopped. */
    settled: async (sessionId: string) => {
      await stopping.get(sessionId)
    },

    /** Keeps a worker after its turn; false when the pool takes none (then retire it). */
    async park(worker: W): Promise<boolean> {
      if (closed || deps.idleMs <= 0) return false
      const timer = setTimeout(() => void retireSession(worker.sessionId, 'idle'), deps.idleMs)
      idle.set(worker.sessionId, { worker, timer })
      void worker.exited.then(() => {
        if (idle.get(worker.sessionId)?.worker === worker)
          void retireSession(worker.sessionId, 'exited while idle')
      })
      await markWarm(
        deps.db,
        worker.sessionId,
        deps.owner,
        new Date(Date.now() + deps.idleMs),
      ).catch((err) => deps.log.warn('could not record a warm worker', { err }))
      return true
    },

    /** Stops the least recently used idle worker; false when there is none. */
    async evictOldest(): Promise<boolean> {
      const oldest = idle.keys().next()
      if (oldest.done) return false
      await retireSession(oldest.value, 'its slot is needed')
      return true
    },

    /** A newer generation of the session exists (another broker took it): stop this one. */
    async superseded(sessionId: string, upTo: number, exact: boolean) {
      const epoch = idle.get(sessionId)?.worker.epoch
      if (epoch !== undefined && (exact ? epoch === upTo : epoch <= upTo))
        await retireSession(sessionId, 'superseded')
    },

    /** Stops every idle worker and keeps no more (shutdown). */
    async stopAll() {
      closed = true
      await Promise.all([...idle.keys()].map((s) => retireSession(s, 'shutdown')))
    },
  }
}

export type WarmPool<W extends IdleWorker = IdleWorker> = ReturnType<typeof createWarmPool<W>>
