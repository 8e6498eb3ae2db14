import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { expect } from 'bun:test'
import { scenario, workerOf, type TurnBroker } from './turns.ts'

/** A session's MCP endpoint on a broker (what the worker's --mcp-config names). */
export const mcpUrl = (b: { url: string }, sessionId: string) =>
  `${b.url}/v1/sessions/${sessionId}/mcp`

/**
 * The SDK client of a worker's MCP server, as Claude Code connects: Streamable HTTP with the
 * worker token as Bearer. Disposing closes it.
 */
export async function connectWorkerMcp(url: string, token: string) {
  const client = new Client({ name: 'test-worker', version: '0.0.0' })
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  )
  const close = () => client.close().catch(() => {})
  return {
    client,
    /** tools/call, with the result typed as a plain CallToolResult. */
    call: async (name: string, args: Record<string, unknown>) =>
      (await client.callTool({ name, arguments: args })) as CallToolResult,
    close,
    [Symbol.asyncDispose]: close,
  }
}

/**
 * What the server answered when the SDK client could not even initialize: the HTTP status and
 * the JSON-RPC body (the SDK puts the body's text in its error message).
 */
export async function refusedConnect(url: string, headers: Record<string, string>) {
  const client = new Client({ name: 'test-worker', version: '0.0.0' })
  const err = await client
    .connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }))
    .then(
      () => null,
      (e: unknown) => e,
    )
  await client.close().catch(() => {})
  expect(err).toBeInstanceOf(StreamableHTTPError)
  return sdkRefusal(err as StreamableHTTPError)
}

/** An SDK StreamableHTTPError as {status, body}. */
export function sdkRefusal(err: StreamableHTTPError) {
  const text = err.message.slice(err.message.indexOf('{'))
  return { status: err.code, body: JSON.parse(text) as unknown }
}

/** Text blocks of a tool result, joined by newlines. */
export const textOf = (result: CallToolResult) =>
  result.content.map((b) => (b.type === 'text' ? b.text : `[${b.type}]`)).join('\n')

/**
 * Starts a `hang` turn in `sessionId` (it runs until cancelled) and answers its id and its
 * worker's token (the fake records CLAUDE_CODE_SESSION_ACCESS_TOKEN).
 */
export async function hangingTurn(b: TurnBroker, sessionId: string, workspaceId: string) {
  const before = (await b.workers(sessionId)).length
  const { turn_id: turnId } = await b.enqueue({
    session_id: sessionId,
    workspace_id: workspaceId,
    user_message: 'wait',
    metadata: scenario('hang'),
  })
  const worker = await workerOf(b, sessionId, before)
  const token = worker.env.CLAUDE_CODE_SESSION_ACCESS_TOKEN
  if (!token) throw new Error('the worker was started without CLAUDE_CODE_SESSION_ACCESS_TOKEN')
  return { turnId, token }
}
