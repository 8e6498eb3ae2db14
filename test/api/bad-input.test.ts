import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { signWorkerToken, secretKey } from '../../src/auth/worker-token.ts'
import { startTestBroker, TEST_SECRET, type TestBroker } from '../helpers/broker.ts'
import { databases } from '../helpers/databases.ts'

const MAX_BODY = 64 * 1024

describe.each(databases())(
  'bad input on $name gets the documented status and stores nothing',
  (db) => {
    let b: TestBroker
    let sid: string
    let token: string
    let base: string
    beforeAll(async () => {
      b = await startTestBroker({
        db,
        env: { CCBROKER_JWT_SECRET: TEST_SECRET, CCBROKER_MAX_BODY_BYTES: String(MAX_BODY) },
      })
      sid = (await b.api('POST', '/v1/sessions', { workspace_id: 'ws-bad' })).body.session.id
      const bridged = (await b.api('POST', `/v1/sessions/${sid}/bridge`)).body
      token = bridged.worker_jwt
      base = bridged.api_base_url
    })
    afterAll(() => b.stop())

    const call = async (
      method: string,
      path: string,
      body: string | undefined,
      auth: string | null = token,
    ) => {
      const res = await fetch(base + path, {
        method,
        headers: {
          'content-type': 'application/json',
          ...(auth === null ? {} : { authorization: `Bearer ${auth}` }),
        },
        body,
      })
      const text = await res.text()
      expect(res.headers.get('content-type')).toStartWith('application/json')
      return { status: res.status, body: JSON.parse(text) }
    }
    const nothingStored = async () => {
      expect((await b.api('GET', `/v1/sessions/${sid}/events`)).body.data).toEqual([])
      const internal = await call('GET', '/worker/internal-events', undefined)
      expect(internal.body).toEqual({ data: [], next_cursor: null })
    }
    const events = (payload: unknown, epoch: unknown = 1) =>
      JSON.stringify({ worker_epoch: epoch, events: [{ payload }] })

    test('malformed JSON → 400', async () => {
      expect(await call('POST', '/worker/events', '{"worker_epoch": 1, "events": [')).toEqual({
        status: 400,
        body: { error: 'request body is not valid JSON' },
      })
      await nothingStored()
    })

    test.each([
      ['worker_epoch as a string', events({ type: 'assistant' }, '1'), 'worker_epoch'],
      ['events not an array', JSON.stringify({ worker_epoch: 1, events: {} }), 'events'],
      ['a payload without type', events({ text: 'x' }), 'events.0.payload.type'],
      ['a payload that is an array', events([1, 2]), 'events.0.payload'],
      ['no worker_epoch', JSON.stringify({ events: [] }), 'worker_epoch'],
      [
        'more than 100 events',
        JSON.stringify({
          worker_epoch: 1,
          events: Array.from({ length: 101 }, () => ({ payload: { type: 'x' } })),
        }),
        'events',
      ],
    ])('%s → 400 naming the field', async (_, body, field) => {
      const res = await call('POST', '/worker/events', body)
      expect(res.status).toBe(400)
      expect(res.body.error).toStartWith(field)
      await nothingStored()
    })

    test('wrong types on the other worker writes → 400', async () => {
      const cases: [string, string, string][] = [
        [
          '/worker/events/delivery',
          JSON.stringify({ worker_epoch: 1, updates: [{ event_id: 'x', status: 'done' }] }),
          'updates.0.status',
        ],
        [
          '/worker/internal-events',
          JSON.stringify({ worker_epoch: 1, events: [{ payload: 'x' }] }),
          'events.0.payload',
        ],
        ['/worker/heartbeat', JSON.stringify({ worker_epoch: -1 }), 'worker_epoch'],
      ]
      for (const [path, body, field] of cases) {
        const res = await call('POST', path, body)
        expect([path, res.status]).toEqual([path, 400])
        expect(res.body.error).toStartWith(`${field}: `)
      }
      const put = await call(
        'PUT',
        '/worker',
        JSON.stringify({ worker_epoch: 1, external_metadata: [] }),
      )
      expect(put.status).toBe(400)
      expect(put.body.error).toStartWith('external_metadata: ')
      await nothingStored()
    })

    test('a body over the limit → 413', async () => {
      const huge = events({ type: 'assistant', text: 'x'.repeat(MAX_BODY) })
      expect(await call('POST', '/worker/events', huge)).toEqual({
        status: 413,
        body: { error: expect.stringContaining('exceeds the limit of 65536') },
      })
      const client = await b.api('POST', `/v1/sessions/${sid}/events`, {
        events: [
          { payload: { type: 'user', message: { role: 'user', content: 'y'.repeat(MAX_BODY) } } },
        ],
      })
      expect(client.status).toBe(413)
      await nothingStored()
    })

    test('missing, malformed, forged and expired tokens → 401', async () => {
      const forged = (
        await signWorkerToken(
          secretKey('another-secret-another-secret-0123456789'),
          { sid, wid: 'ws-bad', epoch: 1 },
          600,
        )
      ).token
      const expired = (
        await signWorkerToken(secretKey(TEST_SECRET), { sid, wid: 'ws-bad', epoch: 1 }, -10)
      ).token
      const body = events({ type: 'assistant', uuid: 'never' })
      const cases: [string | null, string][] = [
        [null, 'missing or malformed Authorization: Bearer header'],
        ['not-a-jwt', 'worker token is malformed'],
        [forged, 'worker token signature is invalid'],
        [expired, 'worker token expired'],
      ]
      for (const [auth, error] of cases) {
        for (const [method, path, b2] of [
          ['POST', '/worker/events', body],
          ['GET', '/worker', undefined],
          ['GET', '/worker/events/stream', undefined],
          ['PUT', '/worker', JSON.stringify({ worker_epoch: 1, worker_status: 'x' })],
        ] as const)
          expect(await call(method, path, b2, auth)).toEqual({ status: 401, body: { error } })
      }
      await nothingStored()
    })

    test("another session's token → 403; an unknown session → 404", async () => {
      const other = (await b.api('POST', '/v1/sessions', { workspace_id: 'ws-bad' })).body.session
        .id
      const otherToken = (await b.api('POST', `/v1/sessions/${other}/bridge`)).body.worker_jwt
      expect(
        await call('POST', '/worker/events', events({ type: 'assistant' }), otherToken),
      ).toEqual({
        status: 403,
        body: { error: `worker token is for session ${other}, not ${sid}` },
      })
      const ghost = 'cse_doesnotexist'
      const ghostToken = (
        await signWorkerToken(secretKey(TEST_SECRET), { sid: ghost, wid: 'w', epoch: 1 }, 600)
      ).token
      const res = await fetch(`${b.url}/v1/sessions/${ghost}/worker/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ghostToken}`, 'content-type': 'application/json' },
        body: events({ type: 'assistant' }),
      })
      expect(res.status).toBe(404)
      expect(await res.json()).toEqual({ error: `session ${ghost} not found` })
      await nothingStored()
    })

    test('external API: unknown session → 404, bad client events → 400 naming the field', async () => {
      expect(await b.api('GET', '/v1/sessions/cse_nope')).toMatchObject({
        status: 404,
        body: { error: 'session cse_nope not found' },
      })
      expect((await b.api('POST', '/v1/sessions/cse_nope/bridge')).status).toBe(404)
      expect((await b.api('GET', '/v1/sessions/cse_nope/events')).status).toBe(404)
      const cases: [unknown, string][] = [
        [{ type: 'bogus' }, 'events.0.payload.type: expected one of'],
        [
          { type: 'user', message: { role: 'assistant', content: 'x' } },
          'events.0.payload.message.role',
        ],
        [
          { type: 'user', message: { role: 'user', content: 5 } },
          'events.0.payload.message.content',
        ],
        [
          { type: 'control_request', request: { subtype: 'interrupt' } },
          'events.0.payload.request_id',
        ],
        [
          { type: 'update_environment_variables', variables: { A: 1 } },
          'events.0.payload.variables.A',
        ],
      ]
      for (const [payload, error] of cases) {
        const res = await b.api('POST', `/v1/sessions/${sid}/events`, { events: [{ payload }] })
        expect(res.status).toBe(400)
        expect(res.body.error).toStartWith(error)
      }
      expect((await b.api('POST', '/v1/sessions', { workspace_id: 'a/b' })).body.error).toStartWith(
        'workspace_id: ',
      )
      expect((await b.api('GET', '/v1/sessions?limit=0')).body.error).toStartWith('limit: ')
      // Union fields answer in the schema's own words, not TypeBox's "'string', 'array'".
      expect(
        await b.api('POST', '/api/v2/turns', {
          session_id: 's',
          workspace_id: 'w',
          user_message: '',
        }),
      ).toMatchObject({
        status: 400,
        body: {
          error:
            'user_message: expected the message as non-empty text (at most 1,000,000 ' +
            'characters) or a non-empty array of content blocks as in the Messages API',
        },
      })
      expect(
        (
          await b.api('POST', '/api/v2/turns', {
            session_id: 's',
            workspace_id: 'w',
            user_message: 'x',
            metadata: { permission_mode: 'nope' },
          })
        ).body.error,
      ).toBe(
        'metadata.permission_mode: expected one of "default", "acceptEdits", "bypassPermissions", "plan", "dontAsk"',
      )
      await nothingStored()
    })
  },
)
