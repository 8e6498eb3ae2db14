import type { EventRow } from '../events/bus.ts'

type SendStored = (rows: EventRow[]) => boolean

/**
 * The event streams this replica's CCR workers hold open, by session and epoch. A warm worker's
 * next user message was stored while its turn waited in the queue, when the stream's live filter
 * (the running turn's events only) let it pass; it is handed to the open stream when the turn
 * starts.
 */
export function createWorkerStreams() {
  const open = new Map<string, Set<SendStored>>()
  const key = (sessionId: string, epoch: number) => `${sessionId}\u0000${epoch}`
  return {
    /** Registers an open stream; answers its unregistration. */
    add(sessionId: string, epoch: number, send: SendStored): () => void {
      const k = key(sessionId, epoch)
      let set = open.get(k)
      if (!set) open.set(k, (set = new Set()))
      set.add(send)
      return () => {
        set.delete(send)
        if (set.size === 0 && open.get(k) === set) open.delete(k)
      }
    },
    /** Sends stored events to the worker's open streams; false when it has none open. */
    send(sessionId: string, epoch: number, rows: EventRow[]): boolean {
      let sent = false
      for (const send of open.get(key(sessionId, epoch)) ?? []) if (send(rows)) sent = true
      return sent
    },
  }
}

export type WorkerStreams = ReturnType<typeof createWorkerStreams>
