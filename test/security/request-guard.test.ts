import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { databases } from '../helpers/databases.ts'
import { storedCounts } from '../helpers/stored.ts'
import { newSessionId, startTurnBroker, type TurnBroker } from '../helpers/turns.ts'

const turnBody = (sessionId = newSessionId()) => ({
  session_id: sessionId,
  workspace_id: 'ws-guard',
  user_message: 'hello',
})

/** A raw request: headers exactly as given (Host and Origin included). */
async function send(
  b: TurnBroker,
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: string } = {},
) {
  const res = await fetch(b.url + path, { method, headers: opts.headers, body: opts.body })
  const text = await res.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {
    // Left as text; a test expecting JSON fails on it.
  }
  return { status: res.status, headers: res.headers, body }
}

describe.each(databases())('request guard on $name', (db) => {
  let b: TurnBroker
  let withCors: TurnBroker
  beforeAll(async () => {
    b = await startTurnBroker({ db, transport: 'stdio' })
    withCors = await startTurnBroker({
      db,
      transport: 'stdio',
      env: {
        CCBROKER_CORS_ORIGINS: 'https://app.example',
        CCBROKER_ALLOWED_HOSTS: 'broker.internal',
      },
    })
  })
  afterAll(async () => {
    await b.stop()
    await withCors.stop()
  })

  test.each([
    [
      'a form post',
      'application/x-www-form-urlencoded',
      'session_id=s&workspace_id=w&user_message=hi',
    ],
    [
      'multipart',
      'multipart/form-data; boundary=x',
      '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--x--\r\n',
    ],
    ['text/plain', 'text/plain', JSON.stringify(turnBody())],
    ['no content type', '', JSON.stringify(turnBody())],
  ])('%s to POST /api/v2/turns → 415 JSON, nothing stored', async (_, type, body) => {
    const before = await storedCounts(b.broker.database.db)
    const res = await send(b, 'POST', '/api/v2/turns', {
      headers: type ? { 'content-type': type } : {},
      body,
    })
    expect(res.status).toBe(415)
    expect(res.body).toEqual({
      error: `request bodies must be JSON (Content-Type: application/json), not ${type.split(';')[0] || 'untyped'}`,
    })
    expect(await storedCounts(b.broker.database.db)).toEqual(before)
  })

  test('JSON with a charset is JSON: 202', async () => {
    const res = await send(b, 'POST', '/api/v2/turns', {
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify(turnBody()),
    })
    expect(res.status).toBe(202)
    // Finished before the next test counts rows.
    await b.waitState((res.body as { turn_id: string }).turn_id, ['done'])
  })

  test('a state-changing request from a foreign Origin → 403 JSON, nothing stored; the broker’s own origin is fine', async () => {
    const before = await storedCounts(b.broker.database.db)
    for (const origin of ['https://evil.example', 'null', 'http://127.0.0.1:1']) {
      const res = await send(b, 'POST', '/api/v2/turns', {
        headers: { 'content-type': 'application/json', origin },
        body: JSON.stringify(turnBody()),
      })
      expect(res.status).toBe(403)
      expect(res.body).toEqual({
        error: `requests from the origin ${origin} may not change anything here; list it in CCBROKER_CORS_ORIGINS to allow it`,
      })
      expect(res.headers.get('access-control-allow-origin')).toBeNull()
    }
    expect(await storedCounts(b.broker.database.db)).toEqual(before)
    const own = await send(b, 'POST', '/api/v2/turns', {
      headers: { 'content-type': 'application/json', origin: new URL(b.url).origin },
      body: JSON.stringify(turnBody()),
    })
    expect(own.status).toBe(202)
    await b.waitState((own.body as { turn_id: string }).turn_id, ['done'])
    // Reading is not changing: a foreign page's GET gets no CORS header, so it cannot read it.
    const read = await send(b, 'GET', '/v1/sessions', {
      headers: { origin: 'https://evil.example' },
    })
    expect(read.status).toBe(200)
    expect(read.headers.get('access-control-allow-origin')).toBeNull()
  })

  test('CCBROKER_CORS_ORIGINS: a listed origin gets its preflight and its answers; others do not', async () => {
    const preflight = await send(withCors, 'OPTIONS', '/api/v2/turns', {
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, authorization',
      },
    })
    expect(preflight.status).toBe(204)
    expect(Object.fromEntries(preflight.headers)).toEqual(
      expect.objectContaining({
        'access-control-allow-origin': 'https://app.example',
        'access-control-allow-methods': 'GET, POST, PUT, DELETE, OPTIONS',
        'access-control-allow-headers': 'authorization, content-type, last-event-id',
        vary: 'Origin',
      }),
    )
    const listed = await send(withCors, 'POST', '/api/v2/turns', {
      headers: { 'content-type': 'application/json', origin: 'https://app.example' },
      body: JSON.stringify(turnBody()),
    })
    expect(listed.status).toBe(202)
    expect(listed.headers.get('access-control-allow-origin')).toBe('https://app.example')
    await withCors.waitState((listed.body as { turn_id: string }).turn_id, ['done'])
    const other = await send(withCors, 'POST', '/api/v2/turns', {
      headers: { 'content-type': 'application/json', origin: 'https://other.example' },
      body: JSON.stringify(turnBody()),
    })
    expect(other.status).toBe(403)
    expect(other.headers.get('access-control-allow-origin')).toBeNull()
  })

  test('a foreign Host while there are no API keys → 421 JSON (DNS rebinding); loopback names and CCBROKER_ALLOWED_HOSTS are served', async () => {
    const before = await storedCounts(b.broker.database.db)
    for (const path of ['/v1/sessions', '/healthz']) {
      const res = await send(b, 'GET', path, { headers: { host: 'evil.example' } })
      expect(res.status).toBe(421)
      expect(res.body).toEqual({
        error:
          'this broker does not serve the host "evil.example" while it has no API keys; use a ' +
          'loopback address, or list the name in CCBROKER_ALLOWED_HOSTS',
      })
    }
    const write = await send(b, 'POST', '/api/v2/turns', {
      headers: { host: 'evil.example:8085', 'content-type': 'application/json' },
      body: JSON.stringify(turnBody()),
    })
    expect(write.status).toBe(421)
    expect(await storedCounts(b.broker.database.db)).toEqual(before)
    const port = new URL(b.url).port
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`])
      expect((await send(b, 'GET', '/v1/sessions', { headers: { host } })).status).toBe(200)
    expect(
      (await send(withCors, 'GET', '/v1/sessions', { headers: { host: 'Broker.Internal' } }))
        .status,
    ).toBe(200)
    expect(
      (await send(withCors, 'GET', '/v1/sessions', { headers: { host: 'evil.example' } })).status,
    ).toBe(421)
  })

  test('a NUL in the path or the query → 400 JSON', async () => {
    for (const path of ['/v1/sessions/a%00b', '/v1/sessions?workspace_id=w%00x'])
      expect(await send(b, 'GET', path)).toEqual({
        status: 400,
        headers: expect.any(Headers),
        body: { error: 'the path or query contains a NUL character (%00)' },
      })
  })
})

describe('request guard with API keys', () => {
  test('any Host is served to a caller with a key', async () => {
    await using b = await startTurnBroker({
      db: databases()[0]!,
      transport: 'stdio',
      env: { CCBROKER_API_KEYS: 'key-0123456789abcdef' },
    })
    const res = await send(b, 'GET', '/v1/sessions', {
      headers: { host: 'broker.example.com', authorization: 'Bearer key-0123456789abcdef' },
    })
    expect(res.status).toBe(200)
  })
})
