import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFile } from 'node:fs/promises'
import { databases, type DatabaseKind } from '../helpers/databases.ts'
import { openSse, type SseClient } from '../helpers/sse.ts'
import { tempDir, type TempDir } from '../helpers/temp-dir.ts'
import {
  newSessionId,
  readWorkerRecords,
  scenario,
  startTurnBroker,
  TRANSPORTS,
  type Transport,
  type TurnBroker,
  type WorkerRecord,
} from '../helpers/turns.ts'
import { until } from '../helpers/until.ts'

const WORKSPACE = 'ws-perm'
const TOOL = 'Bash'
const TOOL_INPUT = { command: 'ls -la /srv' }
const ISO = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)

/**
 * A broker whose fake workers run the `tool` scenario's can_use_tool round trip for `Bash`
 * (FAKE_CLAUDE_TOOL is worker environment, so the records go to a directory of our own).
 */
async function startPermissionBroker(opts: {
  db: DatabaseKind
  transport: Transport
  env?: Record<string, string>
}) {
  const records: TempDir = await tempDir('ccb-perm-')
  let b: TurnBroker
  try {
    b = await startTurnBroker({
      db: opts.db,
      transport: opts.transport,
      env: {
        ...opts.env,
        CCBROKER_WORKER_ENV: JSON.stringify({
          FAKE_CLAUDE_RECORD_DIR: records.path,
          FAKE_CLAUDE_TOOL: TOOL,
          FAKE_CLAUDE_TOOL_INPUT: JSON.stringify(TOOL_INPUT),
        }),
      },
    })
  } catch (err) {
    await records[Symbol.asyncDispose]()
    throw err
  }
  return {
    b,
    /** The first worker of a session, once the fake has recorded it. */
    worker: (sessionId: string) =>
      until(async () => (await readWorkerRecords(records.path, sessionId))[0], {
        what: `the worker of ${sessionId}`,
      }),
    async stop() {
      await b.stop()
      await records[Symbol.asyncDispose]()
    },
  }
}
type PermissionBroker = Awaited<ReturnType<typeof startPermissionBroker>>

/** Reads a listener stream until an event of `type`; answers the event. */
async function nextOfType(stream: SseClient, type: string): Promise<Record<string, any>> {
  for (let f = await stream.next(); f; f = await stream.next())
    if (f.data.event_type === type) return f.data
  throw new Error(`the stream ended before a ${type} event`)
}

/** A session's events of one turn, oldest first. */
async function turnEvents(b: TurnBroker, sessionId: string, turnId: string) {
  const res = await b.api('GET', `/v1/sessions/${sessionId}/events?limit=1000`)
  expect(res.status).toBe(200)
  return (res.body.data as Record<string, any>[]).filter((e) => e.turn_id === turnId)
}

/** The text of the turn's final assistant message (the `tool` scenario's verdict). */
async function finalReply(b: TurnBroker, sessionId: string, turnId: string) {
  const assistant = (await turnEvents(b, sessionId, turnId)).filter(
    (e) => e.event_type === 'assistant',
  )
  return assistant.at(-1)?.payload.message.content[0].text
}

const requestEvent = (sessionId: string, turnId: string, requestId: string) => ({
  event_id: expect.any(String),
  sequence_num: expect.any(Number),
  event_type: 'permission_request',
  source: 'broker',
  epoch: 0,
  turn_id: turnId,
  attempt: 1,
  ephemeral: false,
  payload: {
    type: 'permission_request',
    uuid: expect.any(String),
    turn_id: turnId,
    request_id: requestId,
    tool_name: TOOL,
    input: TOOL_INPUT,
    tool_use_id: expect.stringMatching(/^toolu_fake_/),
    answer_url: `/v1/sessions/${sessionId}/permissions/${requestId}`,
  },
  created_at: ISO,
})

const resolvedPayload = (
  turnId: string,
  requestId: string,
  decision: { behavior: 'allow' | 'deny'; decided_by: string; response: Record<string, unknown> },
) => ({
  type: 'permission_resolved',
  uuid: expect.any(String),
  turn_id: turnId,
  request_id: requestId,
  tool_name: TOOL,
  ...decision,
})

const variants = TRANSPORTS.flatMap((transport) =>
  databases().map((db) => ({ transport, db, name: `${transport} on ${db.name}` })),
)

describe.each(variants)('permission requests under the ask policy, $name', ({ transport, db }) => {
  let p: PermissionBroker
  let b: TurnBroker
  beforeAll(async () => {
    p = await startPermissionBroker({
      db,
      transport,
      env: { CCBROKER_PERMISSION_POLICY: 'ask' },
    })
    b = p.b
  })
  afterAll(() => p.stop())

  const answer = (sessionId: string, requestId: string, body: unknown) =>
    b.api('POST', `/v1/sessions/${sessionId}/permissions/${requestId}`, body)

  /** Starts a `tool` turn and follows its session until the worker asks. */
  async function askingTurn(sessionId: string) {
    const { turn_id: turnId } = await b.enqueue({
      session_id: sessionId,
      workspace_id: WORKSPACE,
      user_message: 'list /srv',
      metadata: scenario('tool'),
    })
    await using stream = await openSse(`${b.url}/v1/sessions/${sessionId}/events/stream`)
    expect(stream.status).toBe(200)
    const request = await nextOfType(stream, 'permission_request')
    return { turnId, request, requestId: request.payload.request_id as string }
  }

  test('a can_use_tool request becomes a permission_request on the session stream; it stays pending while no listener is connected, and an allow lets the worker run the tool', async () => {
    const sessionId = newSessionId('perm-allow')
    const { turnId, request, requestId } = await askingTurn(sessionId)
    expect(request).toEqual(requestEvent(sessionId, turnId, requestId))

    // The first listener is gone (askingTurn closed it). A new one replays the request, and
    // nothing has answered it: the worker still waits.
    await using again = await openSse(`${b.url}/v1/sessions/${sessionId}/events/stream`, {
      'last-event-id': String(request.sequence_num - 1),
    })
    expect((await again.next())?.data).toEqual(request)
    const pending = await turnEvents(b, sessionId, turnId)
    const asked = pending.filter((e) => e.payload.request?.subtype === 'can_use_tool')
    expect(asked.map((e) => [e.source, e.payload.request_id])).toEqual([['worker', requestId]])
    expect(pending.map((e) => e.event_type)).not.toContain('permission_resolved')
    expect((await b.turn(turnId)).state).toBe('running')

    // A malformed answer is refused and leaves the request pending.
    expect(await answer(sessionId, requestId, { behavior: 'maybe' })).toEqual({
      status: 400,
      headers: expect.any(Headers),
      body: { error: expect.stringMatching(/^behavior: /) },
    })

    const allowed = await answer(sessionId, requestId, { behavior: 'allow' })
    const decision = {
      behavior: 'allow' as const,
      decided_by: 'caller',
      response: { behavior: 'allow', updatedInput: TOOL_INPUT },
    }
    expect(allowed).toEqual({
      status: 200,
      headers: expect.any(Headers),
      body: { event: resolvedPayload(turnId, requestId, decision) },
    })
    const resolved = await nextOfType(again, 'permission_resolved')
    expect(resolved).toEqual({
      event_id: allowed.body.event.uuid,
      sequence_num: expect.any(Number),
      event_type: 'permission_resolved',
      source: 'broker',
      epoch: 0,
      turn_id: turnId,
      attempt: 1,
      ephemeral: false,
      payload: allowed.body.event,
      created_at: ISO,
    })

    expect((await b.waitState(turnId, ['done', 'failed'])).state).toBe('done')
    expect(await finalReply(b, sessionId, turnId)).toBe('tool allowed')
    const toolResult = (await turnEvents(b, sessionId, turnId)).find(
      (e) => e.event_type === 'user' && e.source === 'worker',
    )
    expect(toolResult?.payload.message.content[0]).toEqual({
      type: 'tool_result',
      tool_use_id: request.payload.tool_use_id,
      content: [{ type: 'text', text: `fake ${TOOL} output` }],
      is_error: false,
    })

    // A request is answered once.
    expect(await answer(sessionId, requestId, { behavior: 'deny' })).toEqual({
      status: 409,
      headers: expect.any(Headers),
      body: { error: `permission request ${requestId} is already allowed` },
    })
  })

  test('a deny with a message reaches the worker as the tool’s error result: "tool denied: <message>"; a second answer → 409', async () => {
    const sessionId = newSessionId('perm-deny')
    const { turnId, requestId } = await askingTurn(sessionId)
    const denied = await answer(sessionId, requestId, {
      behavior: 'deny',
      message: 'Not on this host.',
    })
    expect(denied).toEqual({
      status: 200,
      headers: expect.any(Headers),
      body: {
        event: resolvedPayload(turnId, requestId, {
          behavior: 'deny',
          decided_by: 'caller',
          response: { behavior: 'deny', message: 'Not on this host.' },
        }),
      },
    })
    expect(await answer(sessionId, requestId, { behavior: 'allow' })).toEqual({
      status: 409,
      headers: expect.any(Headers),
      body: { error: `permission request ${requestId} is already denied` },
    })
    expect((await b.waitState(turnId, ['done', 'failed'])).state).toBe('done')
    expect(await finalReply(b, sessionId, turnId)).toBe('tool denied: Not on this host.')
  })

  test('an answer to an unknown request → 404; a malformed one → 400 naming the field', async () => {
    const created = await b.api('POST', '/v1/sessions', { workspace_id: WORKSPACE })
    const sessionId = created.body.session.id as string
    expect(await answer(sessionId, 'no-such-request', { behavior: 'allow' })).toEqual({
      status: 404,
      headers: expect.any(Headers),
      body: { error: `no permission request no-such-request in session ${sessionId}` },
    })
    const bad = [
      [{}, 'behavior'],
      [{ behavior: 'yes' }, 'behavior'],
      [{ behavior: 'deny', message: 42 }, 'message'],
      [{ behavior: 'allow', updated_input: 'rm -rf /' }, 'updated_input'],
    ] as const
    for (const [body, field] of bad)
      expect({ body, res: await answer(sessionId, 'no-such-request', body) }).toEqual({
        body,
        res: {
          status: 400,
          headers: expect.any(Headers),
          body: { error: expect.stringMatching(new RegExp(`^${field}: `)) },
        },
      })
  })

  test('a cancel while the worker asks: the worker withdraws its request (permission_resolved, withdrawn), and a late answer → 409', async () => {
    const sessionId = newSessionId('perm-late')
    const { turnId, requestId } = await askingTurn(sessionId)
    const cancelled = await b.api('POST', `/api/turns/${turnId}/cancel`)
    expect(cancelled.status).toBe(200)
    expect(cancelled.body.turn.state).toBe('cancelled')
    expect(await answer(sessionId, requestId, { behavior: 'allow' })).toEqual({
      status: 409,
      headers: expect.any(Headers),
      body: { error: `permission request ${requestId} is already withdrawn` },
    })
    const resolved = (await turnEvents(b, sessionId, turnId)).filter(
      (e) => e.event_type === 'permission_resolved',
    )
    expect(resolved.map((e) => e.payload)).toEqual([
      expect.objectContaining({
        request_id: requestId,
        tool_name: TOOL,
        behavior: 'withdrawn',
        decided_by: 'worker',
        response: null,
      }),
    ])
  })

  test('the worker gets --tools WebSearch,WebFetch, no --allowedTools, an --mcp-config naming its session’s MCP URL with its token, and ENABLE_TOOL_SEARCH=false', async () => {
    const sessionId = newSessionId('perm-argv')
    const { turnId } = await askingTurn(sessionId)
    // Read while the worker waits: its HOME, where the config file lives, goes with the turn.
    const worker: WorkerRecord = await p.worker(sessionId)
    const flag = (name: string) => worker.argv[worker.argv.indexOf(name) + 1]
    expect(flag('--tools')).toBe('WebSearch,WebFetch')
    expect(worker.argv).not.toContain('--allowedTools')
    expect(worker.argv.includes('--permission-prompt-tool')).toBe(transport === 'stdio')
    const token = worker.env.CLAUDE_CODE_SESSION_ACCESS_TOKEN
    expect(token).toEqual(expect.any(String))
    expect(JSON.parse(await readFile(flag('--mcp-config')!, 'utf8'))).toEqual({
      mcpServers: {
        broker: {
          type: 'http',
          url: `${b.url}/v1/sessions/${sessionId}/mcp`,
          headers: { Authorization: `Bearer ${token}` },
        },
      },
    })
    expect(worker.env.ENABLE_TOOL_SEARCH).toBe('false')
    expect((await b.api('POST', `/api/turns/${turnId}/cancel`)).body.turn.state).toBe('cancelled')
  })
})

describe.each(TRANSPORTS)('permission policies that answer without a caller, %s', (transport) => {
  const db = databases()[0]!

  describe('bypass (the default)', () => {
    let p: PermissionBroker
    beforeAll(async () => {
      p = await startPermissionBroker({ db, transport })
    })
    afterAll(() => p.stop())

    test('the broker allows the request itself (permission_resolved decided_by policy) and the tool runs', async () => {
      const { b } = p
      const sessionId = newSessionId('perm-bypass')
      const { turn_id: turnId } = await b.enqueue({
        session_id: sessionId,
        workspace_id: WORKSPACE,
        user_message: 'list /srv',
        metadata: scenario('tool'),
      })
      expect((await b.waitState(turnId, ['done', 'failed'])).state).toBe('done')
      expect(await finalReply(b, sessionId, turnId)).toBe('tool allowed')
      const events = await turnEvents(b, sessionId, turnId)
      const request = events.find((e) => e.event_type === 'permission_request')!
      const requestId = request.payload.request_id as string
      expect(request).toEqual(requestEvent(sessionId, turnId, requestId))
      expect(events.find((e) => e.event_type === 'permission_resolved')?.payload).toEqual(
        resolvedPayload(turnId, requestId, {
          behavior: 'allow',
          decided_by: 'policy',
          response: { behavior: 'allow', updatedInput: TOOL_INPUT },
        }),
      )
      const worker = await p.worker(sessionId)
      const flag = (name: string) => worker.argv[worker.argv.indexOf(name) + 1]
      expect(flag('--allowedTools')).toBe('mcp__broker,WebSearch,WebFetch')
      expect(flag('--tools')).toBe('WebSearch,WebFetch')
      expect(worker.env.ENABLE_TOOL_SEARCH).toBe('false')
    })
  })

  describe('allowlist', () => {
    let p: PermissionBroker
    beforeAll(async () => {
      p = await startPermissionBroker({
        db,
        transport,
        env: {
          CCBROKER_PERMISSION_POLICY: 'allowlist',
          CCBROKER_ALLOWED_TOOLS: `${TOOL},WebFetch`,
        },
      })
    })
    afterAll(() => p.stop())

    test('a listed tool is in the worker’s --allowedTools, so it runs without a permission request', async () => {
      const { b } = p
      const sessionId = newSessionId('perm-allowlist')
      const { turn_id: turnId } = await b.enqueue({
        session_id: sessionId,
        workspace_id: WORKSPACE,
        user_message: 'list /srv',
        metadata: scenario('tool'),
      })
      expect((await b.waitState(turnId, ['done', 'failed'])).state).toBe('done')
      expect(await finalReply(b, sessionId, turnId)).toBe('tool allowed')
      const worker = await p.worker(sessionId)
      const flag = (name: string) => worker.argv[worker.argv.indexOf(name) + 1]
      expect(flag('--allowedTools')).toBe(`mcp__broker,${TOOL},WebFetch`)
      expect(flag('--tools')).toBe('WebSearch,WebFetch')
      const events = await turnEvents(b, sessionId, turnId)
      expect(events.map((e) => e.event_type)).not.toContain('permission_request')
      const asked = events.filter(
        (e) => e.source === 'worker' && e.payload.request?.subtype === 'can_use_tool',
      )
      expect(asked).toEqual([])
    })
  })
})
