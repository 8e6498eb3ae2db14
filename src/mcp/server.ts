import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js'
import type { Logger } from '../log.ts'
import type { ScheduleTasks } from '../turns/schedule-tasks.ts'
import type { ExecutorRegistryClient } from './backends/executor-registry.ts'
import type { FetchLike } from '../outbound/guard.ts'
import type { ImBridgeClient } from './backends/im-bridge.ts'
import type { WorkerContext } from './context.ts'
import { registerExecutorTools } from './tools/executor.ts'
import { registerImTools } from './tools/im.ts'
import { registerScheduleTools } from './tools/schedule.ts'
import { registerWorkspaceTools } from './tools/workspace.ts'

export interface WorkerMcpDeps {
  registry: ExecutorRegistryClient | null
  imBridge: ImBridgeClient | null
  /** The outbound guard: how tools fetch URLs a worker names. */
  fetch: FetchLike
  schedules: ScheduleTasks
  log: Logger
}

interface Worker {
  ctx: WorkerContext
  sessions: Map<string, { server: McpServer; transport: WebStandardStreamableHTTPServerTransport }>
}

const rpcError = (status: number, code: number, message: string, id: unknown = null) =>
  Response.json({ jsonrpc: '2.0', error: { code, message }, id }, { status })

/**
 * The MCP servers of running workers, one per turn, with that worker's context. A worker's
 * client gets a stateful Streamable HTTP session (so cancellation reaches tool handlers);
 * everything is closed, and in-flight calls aborted, when the worker's turn ends.
 */
/** A worker's MCP server, as long as the worker lives. */
export interface McpHandle {
  pause(): void
  resume(next: WorkerContext): void
  close(): Promise<void>
}

export function createWorkerMcp(deps: WorkerMcpDeps) {
  const workers = new Map<string, Worker>()

  function build(ctx: WorkerContext): McpServer {
    const server = new McpServer(
      { name: 'cc-broker', version: '0.1.0' },
      { instructions: 'Tools of the cc-broker that runs this session.' },
    )
    const log = deps.log.child({ sessionId: ctx.sessionId, turnId: ctx.turnId })
    if (deps.registry) registerExecutorTools(server, ctx, { registry: deps.registry, log })
    registerWorkspaceTools(server, ctx, { log })
    if (deps.imBridge)
      registerImTools(server, ctx, {
        imBridge: deps.imBridge,
        registry: deps.registry,
        fetch: deps.fetch,
        log,
      })
    registerScheduleTools(server, ctx, { schedules: deps.schedules, log })
    return server
  }

  async function closeWorker(w: Worker) {
    for (const { server, transport } of w.sessions.values()) {
      await transport.close().catch(() => {})
      await server.close().catch(() => {})
    }
    w.sessions.clear()
  }

  return {
    /**
     * Serves tools for a worker's turn until the returned close() (the worker's end). A warm
     * worker keeps its MCP sessions across turns: `pause` between turns (requests get 404),
     * `resume` with the next turn's context (its id, IM channel and user).
     */
    open(ctx: WorkerContext): McpHandle {
      const w: Worker = { ctx: { ...ctx }, sessions: new Map() }
      workers.set(w.ctx.turnId, w)
      const pause = () => {
        if (workers.get(w.ctx.turnId) === w) workers.delete(w.ctx.turnId)
      }
      return {
        pause,
        resume(next: WorkerContext) {
          pause()
          // Tools read their context when called: the same object, now the new turn's.
          Object.assign(w.ctx, { imChannelId: undefined, imUserId: undefined }, next)
          workers.set(w.ctx.turnId, w)
        },
        async close() {
          pause()
          await closeWorker(w)
        },
      }
    },

    /** One HTTP request of a worker's MCP client; the caller has checked its token. */
    async handle(turnId: string, request: Request, body: unknown): Promise<Response> {
      const w = workers.get(turnId)
      if (!w) return rpcError(404, -32001, 'no MCP server for this worker (its turn has ended)')
      const sessionId = request.headers.get('mcp-session-id')
      if (sessionId) {
        const s = w.sessions.get(sessionId)
        if (!s) return rpcError(404, -32001, 'Session not found')
        return s.transport.handleRequest(request, { parsedBody: body })
      }
      if (request.method !== 'POST')
        return rpcError(405, -32000, 'open a session with initialize first')
      const first = (Array.isArray(body) ? body[0] : body) as { method?: string; id?: unknown }
      if (first?.method !== 'initialize')
        // Claude Code first tries `server/discover` (protocol 2026-07-28) and falls back to
        // initialize when it is refused (worker/PROTOCOL.md §10).
        return rpcError(
          400,
          -32601,
          `Method not found: ${String(first?.method)} (this server needs initialize first)`,
          first?.id ?? null,
        )
      const server = build(w.ctx)
      const transport: WebStandardStreamableHTTPServerTransport =
        new WebStandardStreamableHTTPServerTransport({
          sessionIdGenerator: () => crypto.randomUUID(),
          onsessioninitialized: (id) => void w.sessions.set(id, { server, transport }),
          onsessionclosed: (id) => void w.sessions.delete(id),
        })
      await server.connect(transport)
      return transport.handleRequest(request, { parsedBody: body })
    },

    openCount: () => workers.size,
  }
}

export type WorkerMcp = ReturnType<typeof createWorkerMcp>
