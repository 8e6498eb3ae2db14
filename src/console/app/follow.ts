import { readSse } from '../../client/sse.ts'
import type { Api } from './api.ts'
import type { ConsoleEvent } from './events.ts'

/**
 * Follows a session's event stream with fetch (EventSource cannot send the Authorization
 * header): replay from the start, then live; after a dropped connection it reconnects with
 * Last-Event-ID, and skips any sequence number it has already handed on, so the page sees each
 * event once and misses none.
 */
export function followSession(opts: {
  api: Api
  sessionId: string
  signal: AbortSignal
  onEvent(e: ConsoleEvent): void
  onState(state: 'connecting' | 'live' | 'reconnecting' | 'not found'): void
}) {
  let last = 0
  let retryMs = 1000
  const url = `/v1/sessions/${encodeURIComponent(opts.sessionId)}/events/stream`
  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms)
      opts.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true })
    })
  void (async () => {
    opts.onState('connecting')
    while (!opts.signal.aborted) {
      try {
        const res = await fetch(url, {
          cache: 'no-store',
          headers: opts.api.headers({
            accept: 'text/event-stream',
            ...(last > 0 ? { 'last-event-id': String(last) } : {}),
          }),
          signal: opts.signal,
        })
        if (res.status === 401) return opts.api.onUnauthorized()
        // No such session: nothing to wait for.
        if (res.status === 404) return opts.onState('not found')
        if (res.ok && res.body) {
          opts.onState('live')
          for await (const frame of readSse(res.body, (ms) => (retryMs = ms))) {
            const event = JSON.parse(frame.data) as ConsoleEvent
            if (event.sequence_num <= last) continue
            last = event.sequence_num
            opts.onEvent(event)
          }
        }
      } catch {
        // A dropped connection or a broker restarting: try again below.
      }
      if (opts.signal.aborted) return
      opts.onState('reconnecting')
      await wait(retryMs)
    }
  })()
}
