import type { SessionEventRow } from '../db/schema.ts'
import type { Logger } from '../log.ts'

export type EventRow = SessionEventRow

export interface BusDeps {
  /** Committed events of a session with seq > since, in order (a page of at most `limit`). */
  readSince(sessionId: string, since: number, limit: number): Promise<EventRow[]>
  maxSeq(sessionId: string): Promise<number>
  /** Events a subscriber may lag behind before it is cut off. */
  bufferEvents: number
  log: Logger
}

export type CloseReason = 'overflow' | 'closed' | 'shutdown'

export interface Subscriber {
  /**
   * Settles once every event committed from now on will reach this subscriber. Read the replay
   * after it: a read that starts earlier may miss an event the tail then counts as already sent.
   */
  readonly ready: Promise<void>
  /** Next live event, or null once closed; `timeoutMs` elapsing gives 'idle'. */
  next(signal: AbortSignal, timeoutMs: number): Promise<EventRow | null | 'idle'>
  /** Events already queued, without waiting (at most `max`). */
  drain(max: number): EventRow[]
  readonly closedReason: CloseReason | null
  /** Settles with the reason once the subscriber is closed (cut off, closed or shut down). */
  readonly closed: Promise<CloseReason>
  close(): void
}

interface Tail {
  /** Highest seq fanned out; null while the tail reads its starting point. */
  lastSeq: number | null
  subs: Set<Sub>
  reading: boolean
  dirty: boolean
  /** Settles once `lastSeq` is known (or the tail failed and cut its subscribers off). */
  started: Promise<void>
  markStarted(): void
}

interface Sub extends Subscriber {
  filter: (e: EventRow) => boolean
  push(e: EventRow): void
  end(reason: CloseReason): void
}

const PAGE = 500

/**
 * In-process fan-out of committed events to live subscribers. Each session with subscribers has
 * a tail: the highest seq it has fanned out. An append hands over its rows with the seq that
 * preceded them (read under the session lock); when that equals the tail, the rows go straight
 * out, otherwise the tail reads the gap from the database first. So every subscriber sees each
 * session's events in seq order, none twice and none skipped, whichever replica appended them.
 * A subscriber whose queue passes `bufferEvents` is cut off; the producer never waits.
 */
export function createBus(deps: BusDeps) {
  const tails = new Map<string, Tail>()

  const fanOut = (tail: Tail, rows: EventRow[]) => {
    for (const row of rows) {
      if (tail.lastSeq !== null && row.seq <= tail.lastSeq) continue
      tail.lastSeq = row.seq
      for (const sub of tail.subs) if (sub.filter(row)) sub.push(row)
    }
  }

  const catchUp = async (sessionId: string, tail: Tail) => {
    if (tail.reading) {
      tail.dirty = true
      return
    }
    tail.reading = true
    try {
      if (tail.lastSeq === null) {
        tail.lastSeq = await deps.maxSeq(sessionId)
        tail.markStarted()
      }
      for (;;) {
        tail.dirty = false
        const rows = await deps.readSince(sessionId, tail.lastSeq, PAGE)
        fanOut(tail, rows)
        if (rows.length < PAGE && !tail.dirty) break
      }
    } catch (err) {
      deps.log.error('event bus could not read the log; cutting off subscribers', {
        sessionId,
        err,
      })
      for (const sub of tail.subs) sub.end('shutdown')
      tail.markStarted()
    } finally {
      tail.reading = false
    }
  }

  const createSub = (
    sessionId: string,
    filter: (e: EventRow) => boolean,
    ready: Promise<void>,
    onClose: (s: Sub) => void,
  ): Sub => {
    const queue: EventRow[] = []
    let wake: (() => void) | null = null
    let reason: CloseReason | null = null
    const closed = Promise.withResolvers<CloseReason>()
    const sub: Sub = {
      filter,
      ready,
      closed: closed.promise,
      get closedReason() {
        return reason
      },
      push(e) {
        if (reason) return
        queue.push(e)
        if (queue.length > deps.bufferEvents) {
          deps.log.warn('slow listener cut off', { sessionId, buffered: queue.length })
          sub.end('overflow')
        }
        wake?.()
      },
      end(r) {
        if (reason) return
        reason = r
        queue.length = 0
        onClose(sub)
        closed.resolve(r)
        wake?.()
      },
      close: () => sub.end('closed'),
      drain: (max) => queue.splice(0, max),
      async next(signal, timeoutMs) {
        for (;;) {
          if (reason) return null
          const e = queue.shift()
          if (e) return e
          if (signal.aborted) return null
          const woke = await new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => done(false), timeoutMs)
            const onAbort = () => done(true)
            const done = (value: boolean) => {
              clearTimeout(timer)
              signal.removeEventListener('abort', onAbort)
              wake = null
              resolve(value)
            }
            wake = () => done(true)
            signal.addEventListener('abort', onAbort, { once: true })
          })
          if (!woke) return 'idle'
        }
      },
    }
    return sub
  }

  return {
    /** Registers a live subscriber; read the replay from the database once it is `ready`. */
    subscribe(sessionId: string, filter: (e: EventRow) => boolean = () => true): Subscriber {
      let tail = tails.get(sessionId)
      const isNew = !tail
      if (!tail) {
        const started = Promise.withResolvers<void>()
        tail = {
          lastSeq: null,
          subs: new Set(),
          reading: false,
          dirty: false,
          started: started.promise,
          markStarted: started.resolve,
        }
        tails.set(sessionId, tail)
      }
      const t = tail
      const sub = createSub(sessionId, filter, t.started, (s) => {
        t.subs.delete(s)
        if (t.subs.size === 0 && tails.get(sessionId) === t) tails.delete(sessionId)
        deps.log.debug('listener left', {
          sessionId,
          listeners: t.subs.size,
          reason: s.closedReason,
        })
      })
      t.subs.add(sub)
      deps.log.debug('listener joined', { sessionId, listeners: t.subs.size })
      if (isNew) void catchUp(sessionId, t)
      return sub
    },

    /** Rows this process just committed; `prevSeq` is the session's highest seq before them. */
    publish(sessionId: string, prevSeq: number, rows: EventRow[]) {
      const tail = tails.get(sessionId)
      if (!tail || rows.length === 0) return
      if (!tail.reading && tail.lastSeq === prevSeq) fanOut(tail, rows)
      else void catchUp(sessionId, tail)
    },

    /** Another replica committed events up to `lastSeq` (LISTEN/NOTIFY). */
    notify(sessionId: string, lastSeq: number) {
      const tail = tails.get(sessionId)
      if (tail && (tail.lastSeq === null || lastSeq > tail.lastSeq)) void catchUp(sessionId, tail)
    },

    /** After a lost LISTEN connection: notifications may have been missed. */
    resyncAll() {
      for (const [sessionId, tail] of tails) void catchUp(sessionId, tail)
    },

    subscriberCount(sessionId?: string): number {
      if (sessionId) return tails.get(sessionId)?.subs.size ?? 0
      let n = 0
      for (const t of tails.values()) n += t.subs.size
      return n
    },

    closeAll() {
      for (const tail of tails.values()) for (const sub of tail.subs) sub.end('shutdown')
      tails.clear()
    },
  }
}

export type Bus = ReturnType<typeof createBus>
