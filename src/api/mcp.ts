import { Elysia } from 'elysia'
import { bearerToken } from '../auth/bearer.ts'
import { verifyWorkerToken } from '../auth/worker-token.ts'
import { BrokerError } from '../errors.ts'
import type { WorkerMcp } from '../mcp/server.ts'
import type { WorkerIngress } from '../sessions/worker-ingress.ts'
import type { TurnDirectory } from '../turns/directory.ts'

const deny = (status: number, message: string) =>
  Response.json(
    { jsonrpc: '2.0', error: { code: -32001, message }, id: null },
    { status, headers: status === 401 ? { 'www-authenticate': 'Bearer' } : {} },
  )

/**
 * A running worker's MCP endpoint. Claude Code sends its session access token (the worker JWT)
 * as Bearer to HTTP MCP servers (worker/PROTOCOL.md §10): only that worker's token opens its tools.
 * The body comes parsed by the broker's JSON parser (its limits apply) and is handed over as is.
 */
export const mcpRoutes = (deps: {
  mcp: WorkerMcp
  directory: TurnDirectory
  ingress: WorkerIngress
  tokenKey: Uint8Array
}) =>
  new Elysia().all(
    '/v1/sessions/:id/mcp',
    async ({ params, request, server, body }) => {
      const token = bearerToken(request.headers.get('authorization'))
      if (!token) return deny(401, 'missing Authorization: Bearer <worker token>')
      const claims = await verifyWorkerToken(deps.tokenKey, token).catch(() => null)
      if (!claims) return deny(401, 'worker token is invalid or expired')
      if (claims.sid !== params.id) return deny(403, `worker token is for session ${claims.sid}`)
      // A superseded (409) or ended (401) generation's token opens no tools.
      const stale = await deps.ingress.requireCurrent(claims).then(
        () => null,
        (err) => (err instanceof BrokerError ? err : Promise.reject(err)),
      )
      if (stale) return deny(stale.status, stale.message)
      const turnId = await deps.directory.lookup(claims.sid, claims.epoch)
      if (!turnId) return deny(404, 'this worker runs no turn, so it has no MCP server')
      // Tool calls may run for minutes (builds on executors); progress keeps the stream alive.
      server?.timeout(request, 0)
      // The JSON body parser has read and checked the body (limits, NUL, depth).
      return deps.mcp.handle(turnId, request, body)
    },
    { detail: { hide: true } },
  )
