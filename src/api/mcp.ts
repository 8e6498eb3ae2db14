import { Elysia } from 'elysia'
import { bearerToken } from '../auth/bearer.ts'
import { verifyWorkerToken } from '../auth/worker-token.ts'
import type { WorkerMcp } from '../mcp/server.ts'
import type { TurnDirectory } from '../turns/directory.ts'

const deny = (status: number, message: string) =>
  Response.json({ jsonrpc: '2.0', error: { code: -32001, message }, id: null }, { status })

/**
 * A running worker's MCP endpoint. Claude Code sends its session access token (the worker JWT)
 * as Bearer to HTTP MCP servers (worker/PROTOCOL.md §10): only that worker's token opens its tools.
 * `parse: 'none'`: the MCP transport reads the body itself (a body Elysia parsed first is gone).
 */
export const mcpRoutes = (deps: {
  mcp: WorkerMcp
  directory: TurnDirectory
  tokenKey: Uint8Array
}) =>
  new Elysia().all(
    '/v1/sessions/:id/mcp',
    async ({ params, request, server }) => {
      const token = bearerToken(request.headers.get('authorization'))
      if (!token) return deny(401, 'missing Authorization: Bearer <worker token>')
      const claims = await verifyWorkerToken(deps.tokenKey, token).catch(() => null)
      if (!claims) return deny(401, 'worker token is invalid or expired')
      if (claims.sid !== params.id) return deny(403, `worker token is for session ${claims.sid}`)
      const turnId = await deps.directory.lookup(claims.sid, claims.epoch)
      if (!turnId) return deny(404, 'this worker runs no turn, so it has no MCP server')
      // Tool calls may run for minutes (builds on executors); progress keeps the stream alive.
      server?.timeout(request, 0)
      return deps.mcp.handle(turnId, request)
    },
    { parse: 'none', detail: { hide: true } },
  )
