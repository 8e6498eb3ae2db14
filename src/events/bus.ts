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
  /** An internal consumer, not a listener. */
  lossless: boolean
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
    lossless: boolean,
    onClose: (s: Sub) => void,
  ): Sub => {
    const queue: EventRow[] = []
    let wake: (() => void) | null = null
    let reason: CloseReason | null = null
    // Lossless subscribers: the highest seq handed out, and where to read from the database
    // after their queue overflowed (null while the queue is whole).
    let delivered: number | null = null
    let gapFrom: number | null = null
    /** A lossless subscriber's next page from the database after an overflow, filtered. */
    const readGap = async () => {
      const from = gapFrom!
      // Pushes are taken again from here on; anything also in the page is skipped by its seq.
      gapFrom = null
      const rows = await deps.readSince(sessionId, from, PAGE)
      queue.unshift(...rows.filter(filter))
      if (rows.length === PAGE) {
        // More than a page behind: the rest is read again, not queued.
        const last = rows.at(-1)!.seq
        queue.splice(queue.findIndex((r) => r.seq > last) >>> 0)
        gapFrom = last
      }
    }
    const closed = Promise.withResolvers<CloseReason>()
    const sub: Sub = {
      filter,
      lossless,
      ready,
      closed: closed.promise,
      get closedReason() {
        return reason
      },
      push(e) {
        if (reason || gapFrom !== null) return
        queue.push(e)
        if (queue.length > deps.bufferEvents) {
          if (lossless) {
            // An internal consumer is never cut off: it reads what it missed from the log.
            gapFrom = delivered ?? queue[0]!.seq - 1
            queue.length = 0
          } else {
            deps.log.warn('slow listener cut off', { sessionId, buffered: queue.length })
            sub.end('overflow')
          }
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
          if (queue.length === 0 && gapFrom !== null) {
            await readGap()
            continue
          }
          const e = queue.shift()
          if (e && delivered !== null && e.seq <= delivered) continue
          if (e) {
            delivered = e.seq
            return e
          }
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
    subscribe(
      sessionId: string,
      filter: (e: EventRow) => boolean = () => true,
      /**
       * An internal consumer (a turn's executor): instead of being cut off when it falls
       * `bufferEvents` behind, it reads what it missed from the database.
       */
      opts: { lossless?: boolean } = {},
    ): Subscriber {
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
      const sub = createSub(sessionId, filter, t.started, opts.lossless === true, (s) => {
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

    /** Listeners (event streams of callers and workers), not the broker's own consumers. */
    listenerCount(): number {
      let n = 0
      for (const t of tails.values()) for (const s of t.subs) if (!s.lossless) n++
      return n
    },

    closeAll() {
      for (const tail of tails.values()) for (const sub of tail.subs) sub.end('shutdown')
      tails.clear()
    },
  }
}

export type Bus = ReturnType<typeof createBus>
