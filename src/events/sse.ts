import { BadRequestError } from '../errors.ts'
import type { Bus, EventRow, Subscriber } from './bus.ts'

export interface SseStreamOptions {
  bus: Bus
  sessionId: string
  /** Live events pass this filter (replay must apply the same one). */
  filter?: (e: EventRow) => boolean
  /** A page of stored events after `afterSeq`, in seq order; a short page ends the replay. */
  replay: (afterSeq: number) => Promise<EventRow[]>
  replayPageSize: number
  /** The listener's cursor: events with seq ≤ this are not sent. */
  afterSeq: number
  /** The whole SSE frame of one event, LF line endings, ending in a blank line. */
  frame: (e: EventRow) => string
  /** The stream closes after sending an event for which this is true. */
  isLast?: (e: EventRow) => boolean
  /** Sent as `retry:` at the start: how long a client waits before it reconnects. */
  retryMs?: number
  keepaliveMs: number
  signal: AbortSignal
  onClose?: (reason: string) => void
  /**
   * Given, once the stream is open, a way to send stored events out of seq order (the cursor
   * does not move back): a warm worker's next user message, which the live filter let pass
   * while its turn was queued. It answers false once the stream has ended.
   */
  onOpen?: (sendStored: (rows: EventRow[]) => boolean) => void
}

/** A listener's reconnection delay after a dropped stream (the SSE `retry:` field). */
export const RETRY_MS = 1000

const encoder = new TextEncoder()

/**
 * Replay-then-live SSE as a pull-based stream: it subscribes first, then replays from the
 * database, then forwards live events, skipping any seq already sent — so nothing is lost
 * between the two and nothing is sent twice. Written by hand rather than with Elysia's `sse()`
 * because the protocol needs comment frames (keepalive) and exact LF framing
 * (worker/PROTOCOL.md §3).
 */
export function sseResponse(opts: SseStreamOptions): Response {
  let sub: Subscriber | null = null
  let last = opts.afterSeq
  // replay (not yet subscribed, so a long history cannot overflow the live queue) → subscribe →
  // catch up what was committed meanwhile → live.
  let phase: 'replay' | 'catchup' | 'live' = 'replay'
  let done = false
  let ctl: ReadableStreamDefaultController<Uint8Array> | null = null
  const finish = (controller: ReadableStreamDefaultController<Uint8Array>, reason: string) => {
    if (done) return
    done = true
    sub?.close()
    opts.onClose?.(reason)
    try {
      controller.close()
    } catch {
      // Already closed by the client.
    }
  }
  const subscribe = () => {
    const s = opts.bus.subscribe(opts.sessionId, opts.filter)
    // Cut off (too far behind) or shut down: the response ends now, not at a next pull a
    // stalled client would never make, so the listener reconnects with Last-Event-ID.
    void s.closed.then((reason) => {
      if (reason !== 'closed' && ctl) finish(ctl, reason)
    })
    return s
  }
  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        ctl = controller
        if (opts.signal.aborted) return finish(controller, 'aborted')
        // Bun sends no headers until the first body chunk: send one at once.
        const retry = opts.retryMs !== undefined ? `retry: ${opts.retryMs}\n` : ''
        controller.enqueue(encoder.encode(`${retry}: connected\n\n`))
        opts.signal.addEventListener('abort', () => finish(controller, 'aborted'), { once: true })
        opts.onOpen?.((rows) => {
          if (done) return false
          controller.enqueue(encoder.encode(rows.map(opts.frame).join('')))
          return true
        })
      },
      async pull(controller) {
        // Each pull sends at least one chunk (or closes), looping past empty replay pages.
        while (!done) {
          if (phase !== 'live' || !sub) {
            const rows = await opts.replay(last)
            // The client may have hung up while the page was read: subscribing now would leak.
            if (done) return
            let chunk = ''
            let ended = false
            for (const row of rows) {
              if (row.seq <= last) continue
              last = row.seq
              chunk += opts.frame(row)
              if (opts.isLast?.(row)) {
                ended = true
                break
              }
            }
            if (chunk && !done) controller.enqueue(encoder.encode(chunk))
            if (ended) return finish(controller, 'last')
            if (rows.length < opts.replayPageSize) {
              if (phase === 'replay') {
                sub = subscribe()
                phase = 'catchup'
                // The catch-up read must see everything the bus will not send (bus.ts).
                await sub.ready
                if (done) return
              } else phase = 'live'
            }
            if (chunk) return
            continue
          }
          const next = await sub.next(opts.signal, opts.keepaliveMs)
          if (done) return
          if (next === null) return finish(controller, sub.closedReason ?? 'aborted')
          if (next === 'idle') {
            controller.enqueue(encoder.encode(': keepalive\n\n'))
            return
          }
          // Whatever else is already queued goes out in the same chunk.
          let chunk = ''
          for (const e of [next, ...sub.drain(256)]) {
            if (e.seq <= last) continue
            last = e.seq
            chunk += opts.frame(e)
            if (opts.isLast?.(e)) {
              controller.enqueue(encoder.encode(chunk))
              return finish(controller, 'last')
            }
          }
          if (!chunk) continue
          controller.enqueue(encoder.encode(chunk))
          return
        }
      },
      cancel() {
        done = true
        sub?.close()
        opts.onClose?.('cancelled')
      },
    },
    { highWaterMark: 1 },
  )
  return new Response(stream, {
    headers: {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
      // A stream is a connection's last response: when it ends (cut off, finished), the socket
      // closes too, and a stalled client is not left holding it.
      connection: 'close',
    },
  })
}

/** One SSE frame; JSON.stringify escapes newlines, so `data` is always a single line. */
export const frameText = (event: string | null, id: number | null, data: unknown) =>
  `${event ? `event: ${event}\n` : ''}${id === null ? '' : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`

/**
 * A stream's cursor from its `Last-Event-ID` header and its query parameter (already checked by
 * its schema): the larger wins when both are given; null when neither is. A header that is not
 * a whole number from 0 is a 400, as a bad query parameter is.
 */
export function cursorFrom(
  lastEventId: string | undefined,
  query: number | undefined,
): number | null {
  let cursor = query ?? null
  if (lastEventId !== undefined && lastEventId !== '') {
    const n = /^\d{1,16}$/.test(lastEventId.trim()) ? Number(lastEventId.trim()) : NaN
    if (!Number.isSafeInteger(n))
      throw new BadRequestError(
        `Last-Event-ID: expected a whole number from 0 (a sequence_num), got ${JSON.stringify(lastEventId)}`,
      )
    cursor = cursor === null ? n : Math.max(cursor, n)
  }
  return cursor
}
