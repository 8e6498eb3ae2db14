import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startTestBroker, type TestBroker } from '../helpers/broker.ts'
import { databases } from '../helpers/databases.ts'

const sessionShape = (fields: Record<string, unknown>) => ({
  id: expect.stringMatching(/^cse_[0-9a-f]{32}$/),
  workspace_id: 'ws-a',
  title: '',
  status: 'idle',
  epoch: 0,
  external_id: null,
  source: 'api',
  tags: [],
  claude_session_id: expect.stringMatching(
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  ),
  archived: false,
  budget_usd: null,
  forked_from: null,
  usage: {
    cost_usd: 0,
    input_tokens: 0,
    output_tokens: 0,
    cache_read_input_tokens: 0,
    cache_creation_input_tokens: 0,
    results: 0,
    by_model: {},
  },
  created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
  updated_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
  ...fields,
})

describe.each(databases())('sessions API on $name', (db) => {
  let b: TestBroker
  beforeAll(async () => {
    b = await startTestBroker({ db })
  })
  afterAll(() => b.stop())

  test('POST /v1/sessions → 201 with the whole session, defaults filled in', async () => {
    expect(await b.api('POST', '/v1/sessions', { workspace_id: 'ws-a' })).toEqual({
      status: 201,
      headers: expect.any(Headers),
      body: { session: sessionShape({}) },
    })
    const full = await b.api('POST', '/v1/sessions', {
      workspace_id: 'ws-a',
      title: 'Release notes',
      source: 'im',
      tags: ['docs', 'weekly'],
    })
    expect(full.status).toBe(201)
    expect(full.body).toEqual({
      session: sessionShape({ title: 'Release notes', source: 'im', tags: ['docs', 'weekly'] }),
    })
  })

  test('the same external_id in a workspace answers 200 with the same session; another workspace gets its own', async () => {
    const first = await b.api('POST', '/v1/sessions', {
      workspace_id: 'ws-a',
      external_id: 'thread-42',
      title: 'first',
    })
    expect(first.status).toBe(201)
    expect(first.body).toEqual({
      session: sessionShape({ external_id: 'thread-42', title: 'first' }),
    })
    const again = await b.api('POST', '/v1/sessions', {
      workspace_id: 'ws-a',
      external_id: 'thread-42',
      title: 'second',
    })
    expect(again).toEqual({ status: 200, headers: expect.any(Headers), body: first.body })

    const elsewhere = await b.api('POST', '/v1/sessions', {
      workspace_id: 'ws-b',
      external_id: 'thread-42',
    })
    expect(elsewhere.status).toBe(201)
    expect(elsewhere.body.session.id).not.toBe(first.body.session.id)
  })

  test('concurrent creates with one external_id make one session', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        b.api('POST', '/v1/sessions', { workspace_id: 'ws-race', external_id: 'once' }),
      ),
    )
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 201])
    expect(new Set(results.map((r) => r.body.session.id)).size).toBe(1)
    const listed = await b.api('GET', '/v1/sessions?workspace_id=ws-race')
    expect(listed.body.data).toHaveLength(1)
  })

  test('GET /v1/sessions/:id → the session; an unknown id → 404 JSON', async () => {
    const created = (await b.api('POST', '/v1/sessions', { workspace_id: 'ws-a', title: 'get me' }))
      .body
    expect(await b.api('GET', `/v1/sessions/${created.session.id}`)).toEqual({
      status: 200,
      headers: expect.any(Headers),
      body: created,
    })
    const missing = await b.api('GET', '/v1/sessions/cse_0000')
    expect(missing.status).toBe(404)
    expect(missing.body).toEqual({ error: 'session cse_0000 not found' })
  })

  test('GET /v1/sessions pages newest first with limit and next_cursor, filtered by workspace', async () => {
    const ws = `ws-page-${crypto.randomUUID().slice(0, 8)}`
    const created = []
    for (let i = 0; i < 7; i++)
      created.push(
        (await b.api('POST', '/v1/sessions', { workspace_id: ws, title: `s${i}` })).body.session,
      )
    const other = (await b.api('POST', '/v1/sessions', { workspace_id: `${ws}-other` })).body
      .session

    const pages: { data: unknown[]; next_cursor: string | null }[] = []
    let cursor: string | null = null
    do {
      const q: string = `?workspace_id=${ws}&limit=3${cursor ? `&cursor=${cursor}` : ''}`
      const res = await b.api('GET', `/v1/sessions${q}`)
      expect(res.status).toBe(200)
      pages.push(res.body)
      cursor = res.body.next_cursor
    } while (cursor)
    const newestFirst = created.toReversed()
    expect(pages).toEqual([
      { data: newestFirst.slice(0, 3), next_cursor: newestFirst[2].id },
      { data: newestFirst.slice(3, 6), next_cursor: newestFirst[5].id },
      { data: newestFirst.slice(6), next_cursor: null },
    ])

    // Without the filter, the other workspace's newer session comes first.
    const all = await b.api('GET', '/v1/sessions?limit=8')
    expect(all.body.data.slice(0, 8)).toEqual([other, ...newestFirst])
  })

  test('GET /v1/sessions rejects a limit out of range and a bad workspace_id with 400', async () => {
    expect((await b.api('GET', '/v1/sessions?limit=0')).body).toEqual({
      error: 'limit: expected an integer from 1 to 500, got 0',
    })
    const bad = await b.api('GET', '/v1/sessions?workspace_id=..')
    expect(bad.status).toBe(400)
    expect(bad.body.error).toStartWith('workspace_id: ')
  })
})

const KEY = 'key-aaaaaaaaaaaaaaaaaaaaaaaa'
const OTHER_KEY = 'key-bbbbbbbbbbbbbbbbbbbbbbbb'

describe.each(databases())('API keys on $name', (db) => {
  let b: TestBroker
  let sid: string
  beforeAll(async () => {
    b = await startTestBroker({ db, env: { CCBROKER_API_KEYS: `${KEY}, ${OTHER_KEY}` } })
    const res = await b.api('POST', '/v1/sessions', { workspace_id: 'ws-keys' }, auth(KEY))
    expect(res.status).toBe(201)
    sid = res.body.session.id
  })
  afterAll(() => b.stop())

  const auth = (key: string | null): Record<string, string> =>
    key === null ? {} : { authorization: `Bearer ${key}` }
  /** Status, content type and JSON body (null for an event stream, which is closed at once). */
  const call = async (
    method: string,
    path: string,
    body: unknown,
    headers: Record<string, string>,
  ) => {
    const ac = new AbortController()
    const res = await fetch(b.url + path, {
      method,
      signal: ac.signal,
      headers: {
        ...headers,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const contentType = res.headers.get('content-type')?.split(';')[0]
    if (contentType === 'text/event-stream') {
      ac.abort()
      return { status: res.status, contentType, body: null as any }
    }
    return { status: res.status, contentType, body: (await res.json()) as any }
  }
  const routes = () =>
    [
      ['POST', '/v1/sessions', { workspace_id: 'ws-keys' }, 201],
      ['GET', '/v1/sessions', undefined, 200],
      ['GET', `/v1/sessions/${sid}`, undefined, 200],
      ['POST', `/v1/sessions/${sid}/bridge`, undefined, 200],
      [
        'POST',
        `/v1/sessions/${sid}/events`,
        { events: [{ payload: { type: 'user', message: { role: 'user', content: 'hi' } } }] },
        200,
      ],
      ['GET', `/v1/sessions/${sid}/events`, undefined, 200],
      ['GET', `/v1/sessions/${sid}/events/stream`, undefined, 200],
    ] as const
  const state = async () => ({
    sessions: (await call('GET', '/v1/sessions?workspace_id=ws-keys', undefined, auth(KEY))).body,
    events: (await call('GET', `/v1/sessions/${sid}/events`, undefined, auth(KEY))).body,
    epoch: (await call('GET', `/v1/sessions/${sid}`, undefined, auth(KEY))).body.session.epoch,
  })

  test('every external route → 401 JSON without a key or with a wrong one, and nothing changes', async () => {
    const before = await state()
    for (const [method, path, body] of routes()) {
      expect({ route: `${method} ${path}`, ...(await call(method, path, body, {})) }).toEqual({
        route: `${method} ${path}`,
        status: 401,
        contentType: 'application/json',
        body: { error: 'missing or malformed Authorization: Bearer <api key>' },
      })
      for (const wrong of [
        { authorization: 'Bearer key-cccccccccccccccccccccccc' },
        { authorization: KEY },
      ])
        expect({ route: `${method} ${path}`, ...(await call(method, path, body, wrong)) }).toEqual({
          route: `${method} ${path}`,
          status: 401,
          contentType: 'application/json',
          body: {
            error: wrong.authorization.startsWith('Bearer')
              ? 'unknown API key'
              : 'missing or malformed Authorization: Bearer <api key>',
          },
        })
    }
    expect(await state()).toEqual(before)
  })

  test('a bad body without a key is a 401, not a 400', async () => {
    expect(await call('POST', '/v1/sessions', { workspace_id: 7 }, {})).toEqual({
      status: 401,
      contentType: 'application/json',
      body: { error: 'missing or malformed Authorization: Bearer <api key>' },
    })
  })

  test('every external route answers with either configured key', async () => {
    for (const key of [KEY, OTHER_KEY])
      for (const [method, path, body, status] of routes()) {
        const res = await call(method, path, body, auth(key))
        expect({ route: `${method} ${path}`, status: res.status }).toEqual({
          route: `${method} ${path}`,
          status,
        })
      }
  })

  test('/healthz and /docs/json stay open', async () => {
    expect(await call('GET', '/healthz', undefined, {})).toEqual({
      status: 200,
      contentType: 'application/json',
      body: { status: 'ok' },
    })
    const docs = await call('GET', '/docs/json', undefined, {})
    expect(docs.status).toBe(200)
    expect(docs.body.info.title).toBe('cc-broker')
  })

  test('worker routes take the worker JWT, not an API key', async () => {
    const bridged = await call('POST', `/v1/sessions/${sid}/bridge`, undefined, auth(KEY))
    const worker = `/v1/sessions/${sid}/worker`
    const withJwt = await call('GET', worker, undefined, auth(bridged.body.worker_jwt))
    expect(withJwt.status).toBe(200)
    expect(withJwt.body.worker.worker_epoch).toBe(bridged.body.worker_epoch)
    expect(await call('GET', worker, undefined, auth(KEY))).toEqual({
      status: 401,
      contentType: 'application/json',
      body: { error: 'worker token is malformed' },
    })
    const post = await call(
      'POST',
      `${worker}/events`,
      { worker_epoch: bridged.body.worker_epoch, events: [{ payload: { type: 'assistant' } }] },
      auth(KEY),
    )
    expect(post.status).toBe(401)
  })
})

describe('API docs', () => {
  const [db] = databases()
  let b: TestBroker
  let spec: any
  beforeAll(async () => {
    b = await startTestBroker({ db: db! })
    const res = await b.api('GET', '/docs/json')
    expect(res.status).toBe(200)
    spec = res.body
  })
  afterAll(() => b.stop())

  const operations = () =>
    Object.entries<Record<string, any>>(spec.paths).flatMap(([path, ops]) =>
      Object.entries(ops).map(([method, op]) => ({ route: `${method.toUpperCase()} ${path}`, op })),
    )

  test('GET /docs/json lists the routes of sessions, events and the worker protocol with their error responses', () => {
    const documented = Object.fromEntries(
      operations().map(({ route, op }) => [
        route,
        Object.keys(op.responses ?? {})
          .filter((s) => Number(s) >= 400)
          .map(Number),
      ]),
    )
    const workerWrite = [400, 401, 403, 404, 409, 413]
    expect(documented).toMatchObject({
      'GET /healthz': [500],
      'POST /v1/sessions': [400, 401],
      'GET /v1/sessions': [400, 401],
      'GET /v1/sessions/{id}': [401, 404],
      'POST /v1/sessions/{id}/bridge': [401, 404],
      'POST /v1/sessions/{id}/events': [400, 401, 404, 413],
      'GET /v1/sessions/{id}/events': [400, 401, 404],
      'GET /v1/sessions/{id}/events/stream': [400, 401, 404],
      'GET /v1/sessions/{id}/worker': [401, 403, 404, 409],
      'PUT /v1/sessions/{id}/worker': workerWrite,
      'GET /v1/sessions/{id}/worker/events/stream': [400, 401, 403, 404, 409],
      'POST /v1/sessions/{id}/worker/events': workerWrite,
      'POST /v1/sessions/{id}/worker/events/delivery': workerWrite,
      'POST /v1/sessions/{id}/worker/heartbeat': workerWrite,
      'POST /v1/sessions/{id}/worker/internal-events': workerWrite,
      'GET /v1/sessions/{id}/worker/internal-events': [400, 401, 403],
    })
  })

  test('every documented route has a summary, a tag and at least one error response with the {error} body', () => {
    const lacking = operations()
      .filter(({ op }) => {
        const errors = Object.entries<any>(op.responses ?? {}).filter(([s]) => Number(s) >= 400)
        const errorBodies = errors.map(
          ([, r]) => r.content?.['application/json']?.schema?.properties?.error?.type,
        )
        return (
          !(typeof op.summary === 'string' && op.summary.length > 10) ||
          !(op.tags?.length > 0) ||
          errors.length === 0 ||
          errorBodies.some((t) => t !== 'string')
        )
      })
      .map(({ route }) => route)
    expect(lacking).toEqual([])
    expect(operations().length).toBeGreaterThanOrEqual(16)
  })
})
