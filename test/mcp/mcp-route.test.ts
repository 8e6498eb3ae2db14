import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { databases } from '../helpers/databases.ts'
import { newSessionId, startTurnBroker, TRANSPORTS, type TurnBroker } from '../helpers/turns.ts'
import {
  connectWorkerMcp,
  hangingTurn,
  mcpUrl,
  refusedConnect,
  sdkRefusal,
} from '../helpers/worker-mcp.ts'
import { startFakeExecutorRegistry } from '../../src/testing/fakes/executor-registry.ts'
import { startFakeImBridge } from '../../src/testing/fakes/im-bridge.ts'

const WORKSPACE = 'ws-mcp-route'
const BASE_TOOLS = [
  'cancel_scheduled_task',
  'create_scheduled_task',
  'list_scheduled_tasks',
  'workspace_ls',
  'workspace_read',
  'workspace_write',
]
const REMOTE_TOOLS = [
  'list_executors',
  'remote_bash',
  'remote_edit',
  'remote_glob',
  'remote_grep',
  'remote_ls',
  'remote_read',
  'remote_write',
]
const SEND_TOOLS = ['send_file', 'send_image', 'send_message']

const rpcError = (code: number, message: string, id: unknown = null) => ({
  jsonrpc: '2.0',
  error: { code, message },
  id,
})

/** A raw JSON-RPC POST, as Claude Code sends it (src/worker/PROTOCOL.md §10). */
async function rpc(
  url: string,
  token: string,
  body: unknown,
  headers: Record<string, string> = {},
) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      accept: 'application/json, text/event-stream',
      'content-type': 'application/json',
      authorization: `Bearer ${token}`,
      ...headers,
    },
    body: JSON.stringify(body),
  })
  const text = await res.text()
  // A request's answer may come as one SSE message (the server streams, for progress).
  const json = res.headers.get('content-type')?.startsWith('text/event-stream')
    ? text
        .split('\n')
        .filter((line) => line.startsWith('data: '))
        .map((line) => line.slice('data: '.length))
        .join('\n')
    : text
  return { status: res.status, headers: res.headers, body: JSON.parse(json) }
}

const initialize = (id: number) => ({
  jsonrpc: '2.0',
  id,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities: { roots: {}, elicitation: {} },
    clientInfo: { name: 'claude-code', version: '2.1.120' },
  },
})

const toolNames = async (url: string, token: string) => {
  await using mcp = await connectWorkerMcp(url, token)
  return (await mcp.client.listTools()).tools.map((t) => t.name).sort()
}

describe.each(TRANSPORTS)('a running worker’s MCP endpoint on %s', (transport) => {
  let b: TurnBroker
  let sessionId: string
  let token: string
  let url: string
  /** A valid worker token of a session that has no turn (so no MCP server). */
  let idleSession: { id: string; token: string }
  beforeAll(async () => {
    // A process per turn: when its turn ends, the worker and its token end too.
    b = await startTurnBroker({
      db: databases()[0]!,
      transport,
      env: { CCBROKER_WORKER_IDLE_MS: '0' },
    })
    sessionId = newSessionId('mcp-route')
    ;({ token } = await hangingTurn(b, sessionId, WORKSPACE))
    url = mcpUrl(b, sessionId)
    const created = await b.api('POST', '/v1/sessions', { workspace_id: WORKSPACE })
    const bridged = await b.api('POST', `/v1/sessions/${created.body.session.id}/bridge`)
    idleSession = { id: created.body.session.id, token: bridged.body.worker_jwt }
  })
  afterAll(() => b.stop())

  test('its own token opens it: tools/list has workspace_* and the schedule tools, and no remote_* or send_* without their backends', async () => {
    expect(await toolNames(url, token)).toEqual(BASE_TOOLS)
  })

  test('without a token → 401, with a forged one → 401, as JSON-RPC errors', async () => {
    expect(await refusedConnect(url, {})).toEqual({
      status: 401,
      body: rpcError(-32001, 'missing Authorization: Bearer <worker token>'),
    })
    const forged = `${token.slice(0, -4)}AAAA`
    expect(await refusedConnect(url, { authorization: `Bearer ${forged}` })).toEqual({
      status: 401,
      body: rpcError(-32001, 'worker token is invalid or expired'),
    })
  })

  test('another session’s worker token → 403', async () => {
    expect(await refusedConnect(url, { authorization: `Bearer ${idleSession.token}` })).toEqual({
      status: 403,
      body: rpcError(-32001, `worker token is for session ${idleSession.id}`),
    })
  })

  test('a token of an epoch that runs no turn → 404', async () => {
    const idleUrl = mcpUrl(b, idleSession.id)
    const refused = await refusedConnect(idleUrl, { authorization: `Bearer ${idleSession.token}` })
    expect(refused).toEqual({
      status: 404,
      body: rpcError(-32001, 'this worker runs no turn, so it has no MCP server'),
    })
  })

  test('a request with an unknown mcp-session-id → 404; a known one is served', async () => {
    const init = await rpc(url, token, initialize(0))
    expect(init.status).toBe(200)
    const mcpSession = init.headers.get('mcp-session-id')
    expect(mcpSession).toEqual(expect.any(String))
    const list = { jsonrpc: '2.0', id: 1, method: 'tools/list' }
    const session = (id: string) => ({ 'mcp-session-id': id, 'mcp-protocol-version': '2025-11-25' })
    expect(await rpc(url, token, list, session(crypto.randomUUID()))).toEqual({
      status: 404,
      headers: expect.any(Headers),
      body: rpcError(-32001, 'Session not found'),
    })
    const known = await rpc(url, token, list, session(mcpSession!))
    expect(known.status).toBe(200)
    expect(known.body.result.tools.map((t: { name: string }) => t.name).sort()).toEqual(BASE_TOOLS)
  })

  test('a first request other than initialize (server/discover) is refused with a JSON-RPC error, and initialize then works', async () => {
    const discover = {
      jsonrpc: '2.0',
      id: 0,
      method: 'server/discover',
      params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } },
    }
    const refused = await rpc(url, token, discover)
    expect(refused).toEqual({
      status: 400,
      headers: expect.any(Headers),
      body: rpcError(
        -32601,
        'Method not found: server/discover (this server needs initialize first)',
        0,
      ),
    })
    expect(refused.headers.get('mcp-session-id')).toBeNull()
    const init = await rpc(url, token, initialize(1))
    expect(init).toEqual({
      status: 200,
      headers: expect.any(Headers),
      body: {
        jsonrpc: '2.0',
        id: 1,
        result: {
          protocolVersion: '2025-11-25',
          capabilities: expect.objectContaining({ tools: expect.any(Object) }),
          serverInfo: { name: 'cc-broker', version: expect.any(String) },
          instructions: expect.any(String),
        },
      },
    })
  })

  test('when the turn ends its MCP server goes and its token opens nothing: an open MCP session and a new one → 401', async () => {
    const ending = newSessionId('mcp-end')
    const turn = await hangingTurn(b, ending, WORKSPACE)
    await using mcp = await connectWorkerMcp(mcpUrl(b, ending), turn.token)
    expect((await mcp.client.listTools()).tools.length).toBe(BASE_TOOLS.length)

    const cancelled = await b.api('POST', `/api/turns/${turn.turnId}/cancel`)
    expect(cancelled.body.turn.state).toBe('cancelled')

    const { epoch } = JSON.parse(atob(turn.token.split('.')[1]!)) as { epoch: number }
    const gone = rpcError(
      -32001,
      `worker generation ${epoch} has ended; its token is no longer valid`,
    )
    const err = await mcp.client.listTools().then(
      () => null,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(StreamableHTTPError)
    expect(sdkRefusal(err as StreamableHTTPError)).toEqual({ status: 401, body: gone })
    expect(
      await refusedConnect(mcpUrl(b, ending), { authorization: `Bearer ${turn.token}` }),
    ).toEqual({ status: 401, body: gone })
  })
})

describe('tools that need a backend', () => {
  test('remote_* and list_executors appear with CCBROKER_EXECUTOR_REGISTRY_URL, send_* with CCBROKER_IMBRIDGE_URL', async () => {
    await using registry = await startFakeExecutorRegistry()
    await using im = await startFakeImBridge({ secret: 'im-secret' })
    await using b = await startTurnBroker({
      db: databases()[0]!,
      transport: 'stdio',
      env: {
        CCBROKER_EXECUTOR_REGISTRY_URL: registry.url,
        CCBROKER_IMBRIDGE_URL: im.url,
        CCBROKER_IMBRIDGE_SECRET: 'im-secret',
      },
    })
    const sessionId = newSessionId('mcp-backends')
    const { turnId, token } = await hangingTurn(b, sessionId, WORKSPACE)
    expect(await toolNames(mcpUrl(b, sessionId), token)).toEqual(
      [...BASE_TOOLS, ...REMOTE_TOOLS, ...SEND_TOOLS].sort(),
    )
    expect((await b.api('POST', `/api/turns/${turnId}/cancel`)).body.turn.state).toBe('cancelled')
  })
})
