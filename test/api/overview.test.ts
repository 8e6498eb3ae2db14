import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startTestBroker, type TestBroker } from '../../src/testing/test-broker.ts'
import { databases } from '../helpers/databases.ts'
import { until } from '../helpers/until.ts'

const ISO = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)

describe.each(databases())('GET /v1/overview/sessions on $name', (db) => {
  let b: TestBroker
  let drop = async () => {}
  beforeAll(async () => {
    const database = await db.create()
    drop = database.drop
    b = await startTestBroker({ databaseUrl: database.url ?? undefined })
  })
  afterAll(async () => {
    await b.stop()
    await drop()
  })

  const overview = async (query = '') => {
    const res = await fetch(`${b.url}/v1/overview/sessions${query}`)
    return { status: res.status, body: (await res.json()) as any }
  }

  test('each session with its last activity, running turn, queue and cost, most recently active first', async () => {
    const quiet = (await b.client.createSession({ workspaceId: 'ov-a', title: 'Quiet 100%' })).id
    const done = await b.client.runTurn({
      sessionId: 'ov-done',
      workspaceId: 'ov-a',
      message: 'one',
    })
    await b.client.runTurn({ sessionId: 'ov-done', workspaceId: 'ov-a', message: 'two' })
    const held = b.worker!.hold('ov-busy')
    const running = await b.client.enqueueTurn({
      sessionId: 'ov-busy',
      workspaceId: 'ov-b',
      message: 'x',
    })
    const queued = await b.client.enqueueTurn({
      sessionId: 'ov-busy',
      workspaceId: 'ov-b',
      message: 'y',
    })
    await held.arrived

    const { status, body } = await overview()
    expect(status).toBe(200)
    expect(body).toEqual({
      data: [
        {
          id: 'ov-busy',
          workspace_id: 'ov-b',
          title: '',
          status: expect.any(String),
          created_at: ISO,
          last_activity_at: ISO,
          running_turn_id: running.turnId,
          queued_turns: 1,
          cost_usd: 0,
        },
        {
          id: 'ov-done',
          workspace_id: 'ov-a',
          title: '',
          status: expect.any(String),
          created_at: ISO,
          last_activity_at: ISO,
          running_turn_id: null,
          queued_turns: 0,
          cost_usd: 0.0246,
        },
        {
          id: quiet,
          workspace_id: 'ov-a',
          title: 'Quiet 100%',
          status: 'idle',
          created_at: ISO,
          // No events: its creation.
          last_activity_at: body.data[2].created_at,
          running_turn_id: null,
          queued_turns: 0,
          cost_usd: 0,
        },
      ],
      has_more: false,
    })
    const last = (await b.client.listEvents('ov-done')).at(-1)!
    expect(body.data[1].last_activity_at).toBe(last.created_at)
    expect(done.costUsd).toBe(0.0123)

    // A workspace, a search (id or title, any case; % is a character, not a pattern), a limit.
    expect((await overview('?workspace_id=ov-a')).body.data.map((s: any) => s.id)).toEqual([
      'ov-done',
      quiet,
    ])
    expect((await overview('?q=QUIET')).body.data.map((s: any) => s.id)).toEqual([quiet])
    expect((await overview('?q=100%25')).body.data.map((s: any) => s.id)).toEqual([quiet])
    expect((await overview('?q=1%25')).body.data).toEqual([])
    expect((await overview('?q=busy')).body.data.map((s: any) => s.id)).toEqual(['ov-busy'])
    expect(await overview('?limit=1')).toEqual({
      status: 200,
      body: { data: [expect.objectContaining({ id: 'ov-busy' })], has_more: true },
    })
    expect(await overview('?limit=0')).toEqual({
      status: 400,
      body: { error: 'limit: expected an integer from 1 to 500, got 0' },
    })

    held.release()
    await until(async () => (await b.client.getTurn(queued.turnId)).state === 'done', {
      what: 'the queued turn to run',
    })
    expect((await overview('?workspace_id=ov-b')).body.data).toEqual([
      expect.objectContaining({ running_turn_id: null, queued_turns: 0, cost_usd: 0.0246 }),
    ])
  })
})

describe('GET /v1/overview/sessions with API keys', () => {
  test('without the key → 401, and nothing is listed', async () => {
    await using b = await startTestBroker({
      worker: false,
      config: { CCBROKER_API_KEYS: 'overview-key-0123456789' },
    })
    await b.client.createSession({ workspaceId: 'ov-k', title: 'hidden' })
    const res = await fetch(`${b.url}/v1/overview/sessions`)
    expect({ status: res.status, body: await res.json() }).toEqual({
      status: 401,
      body: { error: 'missing or malformed Authorization: Bearer <api key>' },
    })
    const ok = await fetch(`${b.url}/v1/overview/sessions`, {
      headers: { authorization: 'Bearer overview-key-0123456789' },
    })
    expect(((await ok.json()) as any).data.map((s: any) => s.title)).toEqual(['hidden'])
  })
})
