import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createLogger, type LogFields } from '../../src/log.ts'
import { startTestBroker, type TestBroker } from '../helpers/broker.ts'
import { databases } from '../helpers/databases.ts'
import { openSse, type SseClient, type SseFrame } from '../helpers/sse.ts'
import { until } from '../helpers/until.ts'
import { bridgeWorker, createWorkerClient } from '../helpers/worker-client.ts'

/** A logger that keeps every record, so tests can read what the bus did (listener counts). */
function captureLog() {
  const records: LogFields[] = []
  const log = createLogger('debug', {}, (line) => void records.push(JSON.parse(line)))
  /** The session's listener count after the bus's last join or leave. */
  const listeners = (sessionId: string) =>
    records.findLast(
      (r) =>
        r.sessionId === sessionId && (r.msg === 'listener joined' || r.msg === 'listener left'),
    )?.listeners ?? 0
  return { records, log, listeners }
}

/** Reads a stream's frames in the background until it ends. */
function follow(sse: SseClient) {
  const frames: SseFrame[] = []
  let ended = false
  const done = (async () => {
    for (let f = await sse.next(); f; f = await sse.next()) frames.push(f)
    ended = true
  })()
  return {
    frames,
    done,
    get ended() {
      return ended
    },
    ids: () => frames.map((f) => Number(f.id)),
  }
}

/** Every stored event of a session, through the paged JSON API. */
async function storedEvents(broker: TestBroker, id: string) {
  const all: any[] = []
  for (let since = 0; ;) {
    const res = await broker.api('GET', `/v1/sessions/${id}/events?since=${since}&limit=1000`)
    expect(res.status).toBe(200)
    all.push(...res.body.data)
    if (!res.body.has_more) return all
    since = res.body.next_since
  }
}

/** Reads frames until the one with this id; fails if the stream ends first. */
async function readUntil(sse: SseClient, id: number) {
  for (let f = await sse.next(); f?.id !== String(id); f = await sse.next())
    if (!f) throw new Error(`stream ended before event ${id}`)
}

const userMessage = (text: string) => ({
  type: 'user',
  message: { role: 'user', content: text },
  uuid: crypto.randomUUID(),
})

describe.each(databases())('listener stream on $name', (db) => {
  const capture = captureLog()
  let b: TestBroker
  beforeAll(async () => {
    b = await startTestBroker({
      db,
      env: { CCBROKER_SSE_KEEPALIVE_MS: '200' },
      log: capture.log,
    })
  })
  afterAll(() => b.stop())

  const newSession = async () => {
    const res = await b.api('POST', '/v1/sessions', { workspace_id: 'ws-listen' })
    expect(res.status).toBe(201)
    return res.body.session.id as string
  }
  const bridge = bridgeWorker
  const sendUser = async (id: string, text: string) => {
    const res = await b.api('POST', `/v1/sessions/${id}/events`, {
      events: [{ payload: userMessage(text) }],
    })
    expect(res.status).toBe(200)
    return res.body.events[0] as { event_id: string; sequence_num: number }
  }
  const listen = (
    broker: TestBroker,
    id: string,
    query = '',
    headers: Record<string, string> = {},
  ) => openSse(`${broker.url}/v1/sessions/${id}/events/stream${query}`, headers)

  test('frames are `id: <seq>` and `data: <event JSON>` with LF only, after a `retry:` hint and a `: connected` comment', async () => {
    const id = await newSession()
    const sent = await sendUser(id, 'hello')
    await using sse = await listen(b, id)
    expect(sse.status).toBe(200)
    expect(sse.headers.get('content-type')).toBe('text/event-stream')
    const [frame] = await sse.take(1)
    const [stored] = await storedEvents(b, id)
    expect(stored).toEqual({
      event_id: sent.event_id,
      sequence_num: sent.sequence_num,
      event_type: 'user',
      source: 'client',
      epoch: 0,
      turn_id: null,
      attempt: null,
      ephemeral: false,
      payload: { ...userMessage('hello'), uuid: sent.event_id },
      created_at: expect.any(String),
    })
    expect(frame).toEqual({
      event: null,
      id: String(sent.sequence_num),
      data: stored,
      raw: `id: ${sent.sequence_num}\ndata: ${JSON.stringify(stored)}\n\n`,
    })
    expect(sse.text()).toBe(`retry: 1000\n: connected\n\n${frame!.raw}`)
    expect(sse.text()).not.toContain('\r')
  })

  test.each<[string, { since?: number; lastEventId?: number }]>([
    ['?since=', { since: 2 }],
    ['Last-Event-ID', { lastEventId: 2 }],
    [
      'the larger of ?since= and Last-Event-ID (Last-Event-ID larger)',
      { since: 1, lastEventId: 3 },
    ],
    ['the larger of ?since= and Last-Event-ID (?since= larger)', { since: 3, lastEventId: 1 }],
    ['the start when there is no cursor', {}],
  ])('a listener replays after %s, then goes live', async (_, cursor) => {
    const id = await newSession()
    const sent: { event_id: string; sequence_num: number }[] = []
    for (const text of ['one', 'two', 'three', 'four', 'five']) sent.push(await sendUser(id, text))
    // Cursors name positions in this session's log (seq is global across sessions).
    const seqAt = (n: number | undefined) =>
      n === undefined ? undefined : sent[n - 1]!.sequence_num
    const since = seqAt(cursor.since)
    const lastEventId = seqAt(cursor.lastEventId)
    const from = Math.max(since ?? 0, lastEventId ?? 0)
    await using sse = await listen(
      b,
      id,
      since === undefined ? '' : `?since=${since}`,
      lastEventId === undefined ? {} : { 'last-event-id': String(lastEventId) },
    )
    const expected = (await storedEvents(b, id)).filter((e) => e.sequence_num > from)
    const replay = await sse.take(expected.length)
    expect(replay.map((f) => f.data)).toEqual(expected)

    const live = await sendUser(id, 'six')
    const [next] = await sse.take(1)
    expect(next!.id).toBe(String(live.sequence_num))
    expect(next!.data).toEqual((await storedEvents(b, id)).at(-1))
  })

  test('listeners that join while a producer appends get every event after their cursor once, in order', async () => {
    const id = await newSession()
    const worker = await bridge(b, id)
    let produced = 0
    let stop = false
    const statuses = new Set<number>()
    const producer = (async () => {
      for (let batch = 0; !stop; batch++) {
        const size = 1 + (batch % 7)
        const events = Array.from({ length: size }, (_, i) => ({
          payload: { type: 'assistant', uuid: crypto.randomUUID(), batch, i },
        }))
        statuses.add((await worker.postEvents(events)).status)
        produced += size
      }
    })()

    const listeners: { cursor: number; stream: ReturnType<typeof follow>; sse: SseClient }[] = []
    const join = async (cursor: number, query: number | null, lastEventId: number | null) => {
      const sse = await listen(
        b,
        id,
        query === null ? '' : `?since=${query}`,
        lastEventId === null ? {} : { 'last-event-id': String(lastEventId) },
      )
      listeners.push({ cursor, stream: follow(sse), sse })
    }
    const seqs = async () => (await storedEvents(b, id)).map((e) => e.sequence_num as number)

    await join(0, null, null)
    await until(() => produced >= 40, { what: '40 events produced' })
    let known = await seqs()
    const mid = known[Math.floor(known.length / 2)]!
    await join(mid, mid, null)
    await until(() => produced >= 80, { what: '80 events produced' })
    known = await seqs()
    // At the tip: the replay is empty or nearly so and live events race in.
    await join(known.at(-1)!, null, known.at(-1)!)
    await until(() => produced >= 120, { what: '120 events produced' })
    known = await seqs()
    const low = known[10]!
    const high = known.at(-3)!
    await join(high, low, high)
    await join(high, high, low)
    // Ahead of everything stored: only events that get past it.
    await join(known.at(-1)! + 40, known.at(-1)! + 40, null)
    await until(() => produced >= 200, { what: '200 events produced' })
    stop = true
    await producer
    expect([...statuses]).toEqual([200])

    const stored = await storedEvents(b, id)
    const last = stored.at(-1)!.sequence_num
    for (const l of listeners) {
      await until(() => l.stream.frames.at(-1)?.id === String(last), {
        what: `the listener after ${l.cursor} to reach ${last}`,
      })
      expect(l.stream.frames.map((f) => f.data)).toEqual(
        stored.filter((e) => e.sequence_num > l.cursor),
      )
      l.sse.close()
    }
    await until(() => capture.listeners(id) === 0, { what: 'no listeners left' })
  })

  test('an idle stream gets keepalive comments and still delivers the next event', async () => {
    const id = await newSession()
    await using sse = await listen(b, id)
    const next = sse.next()
    await until(() => sse.comments.filter((c) => c === 'keepalive').length >= 2, {
      what: 'two keepalive comments',
    })
    expect(sse.text()).toStartWith('retry: 1000\n: connected\n\n: keepalive\n\n: keepalive\n\n')
    const sent = await sendUser(id, 'after a quiet spell')
    expect((await next)!.id).toBe(String(sent.sequence_num))
  })

  test('the listener count goes back to zero when clients disconnect', async () => {
    const id = await newSession()
    const history = await sendUser(id, 'history')
    const streams = await Promise.all([
      listen(b, id),
      listen(b, id, '?since=0'),
      listen(b, id, '', { 'last-event-id': String(history.sequence_num) }),
    ])
    await until(() => capture.listeners(id) === 3, { what: 'three listeners' })
    const sent = await sendUser(id, 'live')
    for (const s of streams) {
      await readUntil(s, sent.sequence_num)
      s.close()
    }
    await until(() => capture.listeners(id) === 0, { what: 'no listeners left' })
    expect(capture.records.filter((r) => r.sessionId === id && r.msg === 'listener left')).toEqual(
      [2, 1, 0].map((listeners) => expect.objectContaining({ listeners, reason: 'closed' })),
    )
  })

  test('listeners that hang up during their replay leave no subscriber behind', async () => {
    const id = await newSession()
    const pad = 'x'.repeat(1000)
    for (let i = 0; i < 3; i++)
      await b.api('POST', `/v1/sessions/${id}/events`, {
        events: Array.from({ length: 100 }, () => ({ payload: userMessage(pad) })),
      })
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        const sse = await listen(b, id)
        sse.close()
      }),
    )
    // One more listener, queued behind the others' replays, to know they have all run.
    await using last = await listen(b, id)
    await last.take(300)
    await until(() => capture.listeners(id) === 1, { what: 'the last listener alone' })
    last.close()
    await until(() => capture.listeners(id) === 0, { what: 'no listeners left' })
  })

  test('an unknown session → 404 JSON', async () => {
    const res = await fetch(`${b.url}/v1/sessions/cse_unknown/events/stream`)
    expect(res.status).toBe(404)
    expect(res.headers.get('content-type')).toStartWith('application/json')
    expect(await res.json()).toEqual({ error: 'session cse_unknown not found' })
  })
})

describe.each(databases())('a slow listener on $name', (db) => {
  const BUFFER = 300
  const capture = captureLog()

  test('is cut off when its buffer fills; the producer and a fast listener are not held back', async () => {
    await using b = await startTestBroker({
      db,
      env: { CCBROKER_SSE_BUFFER: String(BUFFER) },
      log: capture.log,
    })
    const id = (await b.api('POST', '/v1/sessions', { workspace_id: 'ws-slow' })).body.session.id
    const res = await b.api('POST', `/v1/sessions/${id}/bridge`)
    const worker = createWorkerClient({
      baseUrl: res.body.api_base_url,
      token: res.body.worker_jwt,
      epoch: res.body.worker_epoch,
    })
    // Never read until the producer is done: its socket and then its queue fill up.
    const slow = await fetch(`${b.url}/v1/sessions/${id}/events/stream`)
    await using fastSse = await openSse(`${b.url}/v1/sessions/${id}/events/stream`)
    const fast = follow(fastSse)
    await until(() => capture.listeners(id) === 2, { what: 'two listeners' })

    // 100 batches of 100 events of ~1 KB: about 10 MB.
    const pad = 'p'.repeat(1000)
    const statuses: number[] = []
    for (let batch = 0; batch < 100; batch++) {
      const events = Array.from({ length: 100 }, (_, i) => ({
        payload: { type: 'assistant', uuid: crypto.randomUUID(), batch, i, pad },
      }))
      statuses.push((await worker.postEvents(events)).status)
    }
    expect(statuses).toEqual(Array(100).fill(200))

    const all = (await storedEvents(b, id)).map((e) => e.sequence_num as number)
    expect(all).toHaveLength(10_000)
    await until(() => fast.frames.length >= all.length, { what: 'the fast listener to get all' })
    expect(fast.ids()).toEqual(all)

    const text = await slow.text()
    const slowIds = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]))
    expect(slowIds.length).toBeGreaterThan(0)
    expect(slowIds.length).toBeLessThan(all.length)
    expect(slowIds).toEqual(all.slice(0, slowIds.length))
    expect(capture.records.filter((r) => r.msg === 'slow listener cut off')).toEqual([
      expect.objectContaining({ level: 'warn', sessionId: id, buffered: BUFFER + 1 }),
    ])

    expect(capture.listeners(id)).toBe(1)
    fastSse.close()
    await until(() => capture.listeners(id) === 0, { what: 'no listeners left' })
  })
})
