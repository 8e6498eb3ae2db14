import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { databases } from '../helpers/databases.ts'
import { newSessionId, startTurnBroker, workerOf, type TurnBroker } from '../helpers/turns.ts'

const ISO = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)

/** Usage of `n` fake turns at $0.01, 10 tokens in and 5 out each, all on `fake-model`. */
const usageOf = (n: number) => ({
  cost_usd: expect.closeTo(0.01 * n, 9),
  input_tokens: 10 * n,
  output_tokens: 5 * n,
  cache_read_input_tokens: 0,
  cache_creation_input_tokens: 0,
  results: n,
  by_model:
    n === 0
      ? {}
      : {
          'fake-model': {
            input_tokens: 10 * n,
            output_tokens: 5 * n,
            cache_read_input_tokens: 0,
            cache_creation_input_tokens: 0,
            cost_usd: expect.closeTo(0.01 * n, 9),
          },
        },
})

/** The value of `--max-budget-usd` a worker was started with, or null. */
const budgetArg = (argv: string[]) => {
  const i = argv.indexOf('--max-budget-usd')
  return i < 0 ? null : Number(argv[i + 1])
}

describe.each(databases())('usage and budgets on $name', (db) => {
  let b: TurnBroker
  beforeAll(async () => {
    // Each turn costs $0.01; the cost state is cumulative over the conversation, as Claude Code
    // 2.1.332 keeps it (restored on --resume), with the result's own part alongside.
    b = await startTurnBroker({
      db,
      transport: 'stdio',
      workerEnv: { FAKE_CLAUDE_COST_USD: '0.01', FAKE_CLAUDE_COST_STATE: 'cumulative' },
    })
  })
  afterAll(() => b.stop())

  const run = async (sessionId: string, workspaceId: string, metadata = {}) => {
    const { turn_id } = await b.enqueue({
      session_id: sessionId,
      workspace_id: workspaceId,
      user_message: 'spend',
      metadata,
    })
    return b.waitState(turn_id, ['done', 'failed', 'cancelled'])
  }

  test('three turns: each counts its own cost; the session, its listing and the workspace show the totals', async () => {
    const ws = `ws-u-${crypto.randomUUID().slice(0, 6)}`
    const sessionId = newSessionId()
    const before = new Date().toISOString()
    const turns = []
    for (let i = 0; i < 3; i++) turns.push(await run(sessionId, ws))
    // Claude Code's total grows with the conversation; the turn's own cost does not.
    expect(turns.map((t) => [t.state, t.cost_usd, t.result.total_cost_usd])).toEqual([
      ['done', 0.01, 0.01],
      ['done', 0.01, expect.closeTo(0.02, 9)],
      ['done', 0.01, expect.closeTo(0.03, 9)],
    ])
    const session = (await b.api('GET', `/v1/sessions/${sessionId}`)).body.session
    expect(session.usage).toEqual(usageOf(3))
    expect(session.budget_usd).toBeNull()
    const listed = (await b.api('GET', `/v1/sessions?workspace_id=${ws}`)).body.data
    expect(listed.map((s: any) => [s.id, s.usage])).toEqual([[sessionId, usageOf(3)]])

    const other = newSessionId()
    await run(other, ws)
    expect(await b.api('GET', `/v1/workspaces/${ws}/usage`)).toEqual({
      status: 200,
      headers: expect.any(Headers),
      body: {
        workspace_id: ws,
        since: null,
        budget_usd: null,
        total: usageOf(4),
        sessions: [
          { session_id: sessionId, ...usageOf(3) },
          { session_id: other, ...usageOf(1) },
        ],
      },
    })
    const sinceThen = (await b.api('GET', `/v1/workspaces/${ws}/usage?since=${before}`)).body
    expect(sinceThen.total).toEqual(usageOf(4))
    const future = new Date(Date.now() + 60_000).toISOString()
    const none = (await b.api('GET', `/v1/workspaces/${ws}/usage?since=${future}`)).body
    expect([none.since, none.total, none.sessions]).toEqual([future, usageOf(0), []])
    expect((await b.api('GET', `/v1/workspaces/${ws}/usage?since=yesterday`)).body).toEqual({
      error: 'since: expected an ISO 8601 time, got "yesterday"',
    })
  })

  test('a session budget: what is left goes to --max-budget-usd; once spent, the next turn → 409 with a budget_exhausted event; raising it lets turns run', async () => {
    const ws = `ws-b-${crypto.randomUUID().slice(0, 6)}`
    const created = await b.api('POST', '/v1/sessions', { workspace_id: ws, budget_usd: 0.025 })
    expect(created.status).toBe(201)
    const sessionId = created.body.session.id
    expect(created.body.session.budget_usd).toBe(0.025)

    const first = await run(sessionId, ws)
    const second = await run(sessionId, ws)
    // $0.005 left: the turn's $0.01 goes past it, and Claude Code stops it there.
    const third = await run(sessionId, ws)
    const argv = (await b.workers(sessionId)).map((w) => budgetArg(w.argv))
    expect(argv).toEqual([0.025, 0.015, 0.005])
    expect([first.state, second.state]).toEqual(['done', 'done'])
    expect(third).toMatchObject({
      state: 'failed',
      error: 'worker reported an error (error_max_budget_usd): Reached maximum budget ($0.005)',
      cost_usd: 0.01,
    })

    const refused = await b.api('POST', '/api/v2/turns', {
      session_id: sessionId,
      workspace_id: ws,
      user_message: 'one more',
    })
    const standing = {
      scope: 'session',
      id: sessionId,
      budget_usd: 0.025,
      spent_usd: expect.closeTo(0.03, 9),
      remaining_usd: 0,
      raise: { method: 'PATCH', path: `/v1/sessions/${sessionId}`, body: { budget_usd: 'number' } },
    }
    expect(refused).toEqual({
      status: 409,
      headers: expect.any(Headers),
      body: {
        error: `session ${sessionId} has spent $0.0300 of its $0.025 budget; raise it with PATCH /v1/sessions/${sessionId} {"budget_usd": <more>}`,
        code: 'budget_exhausted',
        budget: standing,
      },
    })
    // Nothing was queued; the log says why, once when the third turn spent it and once now.
    const turns = (await b.api('GET', `/v1/sessions/${sessionId}/turns`)).body.data
    expect(turns.length).toBe(3)
    const events = (await b.api('GET', `/v1/sessions/${sessionId}/events?limit=1000`)).body.data
    const exhausted = events.filter((e: any) => e.event_type === 'budget_exhausted')
    expect(exhausted.map((e: any) => [e.source, e.turn_id, e.payload.scope])).toEqual([
      ['broker', third.id, 'session'],
      ['broker', null, 'session'],
    ])
    expect(exhausted[1].payload).toEqual({
      type: 'budget_exhausted',
      turn_id: null,
      ...standing,
      message: refused.body.error,
      uuid: expect.any(String),
    })

    const raised = await b.api('PATCH', `/v1/sessions/${sessionId}`, { budget_usd: 0.1 })
    expect([raised.status, raised.body.session.budget_usd, raised.body.session.usage]).toEqual([
      200,
      0.1,
      usageOf(3),
    ])
    expect((await run(sessionId, ws)).state).toBe('done')
    expect(budgetArg((await workerOf(b, sessionId, 3)).argv)).toBe(0.07)
    // null: no budget, no --max-budget-usd.
    await b.api('PATCH', `/v1/sessions/${sessionId}`, { budget_usd: null })
    await run(sessionId, ws)
    expect(budgetArg((await workerOf(b, sessionId, 4)).argv)).toBeNull()
  })

  test('a workspace budget by its route; the smaller of session and workspace goes to Claude Code, metadata.max_budget_usd caps one turn', async () => {
    const ws = `ws-w-${crypto.randomUUID().slice(0, 6)}`
    expect((await b.api('GET', `/v1/workspaces/${ws}/budget`)).body).toEqual({
      workspace_id: ws,
      budget_usd: null,
      from_config: false,
      spent_usd: 0,
    })
    expect((await b.api('PUT', `/v1/workspaces/${ws}/budget`, { budget_usd: 0.05 })).body).toEqual({
      workspace_id: ws,
      budget_usd: 0.05,
      from_config: false,
      spent_usd: 0,
    })
    const a = (await b.api('POST', '/v1/sessions', { workspace_id: ws, budget_usd: 0.5 })).body
      .session.id
    const other = newSessionId()
    await run(a, ws)
    await run(other, ws)
    await run(a, ws, { max_budget_usd: 0.001 })
    expect((await b.workers(a)).map((w) => budgetArg(w.argv))).toEqual([0.05, 0.001])
    expect((await b.workers(other)).map((w) => budgetArg(w.argv))).toEqual([0.04])
    expect((await b.api('GET', `/v1/workspaces/${ws}/budget`)).body.spent_usd).toBeCloseTo(0.03, 9)

    // Spent down to nothing by the workspace's other session: this one is refused too.
    await b.api('PUT', `/v1/workspaces/${ws}/budget`, { budget_usd: 0.03 })
    const refused = await b.api('POST', '/api/v2/turns', {
      session_id: a,
      workspace_id: ws,
      user_message: 'no',
    })
    expect([refused.status, refused.body.budget.scope, refused.body.budget.raise]).toEqual([
      409,
      'workspace',
      { method: 'PUT', path: `/v1/workspaces/${ws}/budget`, body: { budget_usd: 'number' } },
    ])
    // A new session in a spent workspace is not created either.
    const fresh = newSessionId()
    const refusedNew = await b.api('POST', '/api/v2/turns', {
      session_id: fresh,
      workspace_id: ws,
      user_message: 'no',
    })
    expect(refusedNew.status).toBe(409)
    expect((await b.api('GET', `/v1/sessions/${fresh}`)).status).toBe(404)
    await b.api('PUT', `/v1/workspaces/${ws}/budget`, { budget_usd: null })
    expect((await run(a, ws)).state).toBe('done')
  })

  test('a turn queued while money was left, that finds none when it starts, fails without a worker', async () => {
    const ws = `ws-q-${crypto.randomUUID().slice(0, 6)}`
    const sessionId = (await b.api('POST', '/v1/sessions', { workspace_id: ws, budget_usd: 0.01 }))
      .body.session.id
    const held = b.control.hold(sessionId)
    const first = await b.enqueue({ session_id: sessionId, workspace_id: ws, user_message: 'a' })
    await held.arrived
    const second = await b.enqueue({ session_id: sessionId, workspace_id: ws, user_message: 'b' })
    held.release({})
    expect((await b.waitState(first.turn_id, ['failed'])).error).toContain('error_max_budget_usd')
    const refused = await b.waitState(second.turn_id, ['failed'])
    expect(refused.error).toBe(
      `session ${sessionId} has spent $0.0100 of its $0.01 budget; raise it with PATCH /v1/sessions/${sessionId} {"budget_usd": <more>}`,
    )
    expect((await b.workers(sessionId)).length).toBe(1)
    const events = (await b.api('GET', `/v1/sessions/${sessionId}/events?limit=1000`)).body.data
    expect(
      events.filter((e: any) => e.event_type === 'budget_exhausted').map((e: any) => e.turn_id),
    ).toEqual([first.turn_id, second.turn_id])
  })

  test('bad budgets → 400', async () => {
    const ws = 'ws-bad'
    for (const [method, path, body] of [
      ['POST', '/v1/sessions', { workspace_id: ws, budget_usd: -1 }],
      ['PUT', `/v1/workspaces/${ws}/budget`, { budget_usd: 'ten' }],
      [
        'POST',
        '/api/v2/turns',
        { session_id: 'x', workspace_id: ws, user_message: 'm', metadata: { max_budget_usd: 0 } },
      ],
    ] as const)
      expect((await b.api(method, path, body)).status).toBe(400)
  })
})

const pg = databases().find((d) => d.name === 'postgres')
describe.skipIf(!pg)('spend across two replicas on one Postgres', () => {
  test('turns run by either replica count on both; a budget spent through one refuses on the other', async () => {
    await using one = await startTurnBroker({
      db: pg!,
      transport: 'stdio',
      workerEnv: { FAKE_CLAUDE_COST_USD: '0.01' },
    })
    await using two = await startTurnBroker({
      db: pg!,
      transport: 'stdio',
      workerEnv: { FAKE_CLAUDE_COST_USD: '0.01' },
      databaseUrl: one.config.databaseUrl!,
    })
    const ws = 'ws-replicas'
    await one.api('PUT', `/v1/workspaces/${ws}/budget`, { budget_usd: 0.03 })
    const run = async (b: TurnBroker, sessionId: string) => {
      const { turn_id } = await b.enqueue({
        session_id: sessionId,
        workspace_id: ws,
        user_message: 'x',
      })
      return b.waitState(turn_id, ['done', 'failed'])
    }
    const s1 = newSessionId()
    const s2 = newSessionId()
    await run(one, s1)
    await run(two, s2)
    await run(two, s1)
    for (const b of [one, two]) {
      const u = (await b.api('GET', `/v1/workspaces/${ws}/usage`)).body
      expect([u.total.results, u.total.cost_usd]).toEqual([3, expect.closeTo(0.03, 9)])
      expect((await b.api('GET', `/v1/sessions/${s1}`)).body.session.usage.results).toBe(2)
    }
    expect(
      (
        await one.api('POST', '/api/v2/turns', {
          session_id: s2,
          workspace_id: ws,
          user_message: 'no',
        })
      ).status,
    ).toBe(409)
    expect(
      (
        await two.api('POST', '/api/v2/turns', {
          session_id: s1,
          workspace_id: ws,
          user_message: 'no',
        })
      ).status,
    ).toBe(409)
  })
})
