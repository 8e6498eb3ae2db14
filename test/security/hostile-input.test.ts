import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { databases } from '../helpers/databases.ts'
import { storedCounts } from '../helpers/stored.ts'
import { newSessionId, startTurnBroker, type TurnBroker } from '../helpers/turns.ts'

const MAX_BODY = 256 * 1024

describe.each(databases())('hostile input on $name', (db) => {
  let b: TurnBroker
  let existing: string
  beforeAll(async () => {
    b = await startTurnBroker({
      db,
      transport: 'stdio',
      env: { CCBROKER_MAX_BODY_BYTES: String(MAX_BODY) },
    })
    existing = newSessionId('hostile')
    const res = await b.api('POST', '/api/v2/turns', {
      session_id: existing,
      workspace_id: 'ws-hostile',
      user_message: 'a session to write to',
    })
    await b.waitState(res.body.turn_id, ['done'])
  })
  afterAll(() => b.stop())

  /** Sends `body` (a string, exactly as given) and checks the refusal stored nothing. */
  async function refused(method: string, path: string, body?: string, headers = {}) {
    const before = await storedCounts(b.broker.database.db)
    const res = await b.api(method, path, body, headers)
    expect(await storedCounts(b.broker.database.db)).toEqual(before)
    return { status: res.status, body: res.body }
  }

  test('a NUL in user_message → 400 naming the field, and the new session is not created', async () => {
    const sessionId = newSessionId('nul')
    const body = JSON.stringify({
      session_id: sessionId,
      workspace_id: 'ws-hostile',
      user_message: 'before\u0000after',
    })
    expect(await refused('POST', '/api/v2/turns', body)).toEqual({
      status: 400,
      body: { error: 'user_message: contains a NUL character, which cannot be stored' },
    })
    expect((await b.api('GET', `/v1/sessions/${sessionId}`)).status).toBe(404)
  })

  test.each([
    ['a session title', '/v1/sessions', { workspace_id: 'ws-hostile', title: 't\u0000' }, 'title'],
    [
      'a client event',
      () => `/v1/sessions/${existing}/events`,
      {
        events: [{ payload: { type: 'user', message: { role: 'user', content: 'x\u0000' } } }],
      },
      'events.0.payload.message.content',
    ],
    [
      'an object key',
      '/api/v2/turns',
      {
        session_id: 'k',
        workspace_id: 'ws-hostile',
        user_message: 'x',
        metadata: { 'a\u0000b': 1 },
      },
      'metadata.a\u0000b',
    ],
  ] as const)('a NUL in %s → 400 naming it, nothing stored', async (_, path, body, field) => {
    const url = typeof path === 'function' ? path() : path
    expect(await refused('POST', url, JSON.stringify(body))).toEqual({
      status: 400,
      body: { error: `${field}: contains a NUL character, which cannot be stored` },
    })
  })

  test('50,000-deep nested JSON → 400 naming the limit; 100 levels are accepted', async () => {
    const deep = `{"events":[{"payload":{"type":"user","x":${'['.repeat(50_000)}${']'.repeat(50_000)}}}]}`
    expect(await refused('POST', `/v1/sessions/${existing}/events`, deep)).toEqual({
      status: 400,
      body: { error: 'request body nests deeper than 100 levels' },
    })
    // The body's own three levels and the payload's two, then 95 more: exactly 100.
    const nested = `${'['.repeat(95)}1${']'.repeat(95)}`
    const ok = await b.api(
      'POST',
      `/v1/sessions/${existing}/events`,
      `{"events":[{"payload":{"type":"keep_alive","x":${nested}}}]}`,
    )
    expect(ok.status).toBe(200)
  })

  test('a chunked body over CCBROKER_MAX_BODY_BYTES → 413 JSON, nothing stored; one within it is stored', async () => {
    const big = JSON.stringify({
      events: [{ payload: { type: 'keep_alive', pad: 'x'.repeat(MAX_BODY) } }],
    })
    const chunked = (text: string) =>
      new ReadableStream<Uint8Array>({
        start(c) {
          const bytes = new TextEncoder().encode(text)
          for (let i = 0; i < bytes.length; i += 8192) c.enqueue(bytes.subarray(i, i + 8192))
          c.close()
        },
      })
    const before = await storedCounts(b.broker.database.db)
    const res = await fetch(`${b.url}/v1/sessions/${existing}/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chunked(big),
    })
    expect(res.status).toBe(413)
    expect(await res.json()).toEqual({
      error: `request body exceeds the limit of ${MAX_BODY} bytes`,
    })
    expect(await storedCounts(b.broker.database.db)).toEqual(before)
    const small = JSON.stringify({ events: [{ payload: { type: 'keep_alive' } }] })
    const stored = await fetch(`${b.url}/v1/sessions/${existing}/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chunked(small),
    })
    expect(stored.status).toBe(200)
  })

  test('a declared length far over the limit → our JSON 413, not an empty one', async () => {
    const body = 'x'.repeat(MAX_BODY * 4)
    const res = await refused('POST', `/v1/sessions/${existing}/events`, body)
    expect(res).toEqual({
      status: 413,
      body: { error: `request body of ${MAX_BODY * 4} bytes exceeds the limit of ${MAX_BODY}` },
    })
  })

  test('an invalid Last-Event-ID → 400 on every stream, as an invalid ?since= is', async () => {
    const turnId = (await b.api('GET', `/v1/sessions/${existing}/turns`)).body.data[0].id
    for (const value of ['abc', '-5', '1.5', '99999999999999999999'])
      for (const path of [
        `/v1/sessions/${existing}/events/stream`,
        `/api/turns/${turnId}/events`,
      ]) {
        const res = await b.api('GET', path, undefined, { 'last-event-id': value })
        expect(res.status).toBe(400)
        expect(res.body).toEqual({
          error: `Last-Event-ID: expected a whole number from 0 (a sequence_num), got ${JSON.stringify(value)}`,
        })
      }
    const since = await b.api('GET', `/v1/sessions/${existing}/events/stream?since=abc`)
    expect(since.status).toBe(400)
  })
})
