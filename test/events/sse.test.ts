import { describe, expect, test } from 'bun:test'
import { createBus, type EventRow } from '../../src/events/bus.ts'
import { frameText, sseResponse } from '../../src/events/sse.ts'
import { createLogger } from '../../src/log.ts'

const row = (seq: number): EventRow => ({
  seq,
  sessionId: 'cse_race',
  eventId: `event-${seq}`,
  eventType: 'user',
  source: 'client',
  epoch: 0,
  payload: { n: seq },
  ephemeral: false,
  turnId: null,
  attempt: null,
  createdAt: new Date(0),
})

/** Ids of the SSE frames in a body, read one chunk at a time. */
function frameIds(body: ReadableStream<Uint8Array>) {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  return async function next(): Promise<number | null> {
    for (;;) {
      const match = /^id: (\d+)$/m.exec(buffer)
      if (match) {
        buffer = buffer.slice(buffer.indexOf('\n\n', match.index) + 2)
        return Number(match[1])
      }
      const { value, done } = await reader.read()
      if (done) return null
      buffer += decoder.decode(value, { stream: true })
    }
  }
}

// The bus starts a session's tail at the log's end (maxSeq) when its first listener joins. With
// a pool of connections that read can run after the listener's own catch-up read, and an event
// committed between the two was lost: neither the replay nor the bus sent it. This orders the
// reads by hand; the in-memory log stands in for the database only to control that timing.
describe('replay then live', () => {
  test('an event committed between the catch-up read and the tail’s start is still sent', async () => {
    const log: EventRow[] = [row(1)]
    const readSince = async (_: string, since: number, limit: number) =>
      log.filter((r) => r.seq > since).slice(0, limit)
    const tailStart = Promise.withResolvers<number>()
    const bus = createBus({
      readSince,
      // The tail's snapshot of the log's end is whatever the test answers, when it answers.
      maxSeq: () => tailStart.promise,
      bufferEvents: 100,
      log: createLogger('silent'),
    })
    const abort = new AbortController()
    const response = sseResponse({
      bus,
      sessionId: 'cse_race',
      afterSeq: 0,
      replay: (after) => readSince('cse_race', after, 10),
      replayPageSize: 10,
      frame: (e) => frameText(null, e.seq, { n: e.seq }),
      keepaliveMs: 60_000,
      signal: abort.signal,
    })
    const next = frameIds(response.body!)
    expect(await next()).toBe(1)
    // Let the stream run as far as it will on its own (its catch-up read, if it does not wait).
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))

    log.push(row(2))
    bus.publish('cse_race', 1, [row(2)])
    tailStart.resolve(2)
    log.push(row(3))
    bus.publish('cse_race', 2, [row(3)])

    expect(await next()).toBe(2)
    expect(await next()).toBe(3)
    abort.abort()
    expect(bus.subscriberCount('cse_race')).toBe(0)
  })
})
