import { Elysia } from 'elysia'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import type { WorkerMcp } from '../mcp/server.ts'
import type { SessionEvents } from '../sessions/client-events.ts'
import type { SessionOverview } from '../sessions/overview.ts'
import type { SessionService } from '../sessions/service.ts'
import type { WorkerIngress } from '../sessions/worker-ingress.ts'
import type { TurnDirectory } from '../turns/directory.ts'
import type { Permissions } from '../turns/permissions.ts'
import type { TurnQueue } from '../turns/queue.ts'
import type { ScheduleTasks } from '../turns/schedule-tasks.ts'
import type { TurnStreams } from '../turns/stream.ts'
import type { Budgets } from '../usage/budgets.ts'
import type { WebhookService } from '../webhooks/service.ts'
import { bodyLimit } from './body-limit.ts'
import { consoleRoutes } from './console.ts'
import { docs } from './docs.ts'
import { errorMapper } from './error-mapper.ts'
import { healthRoutes } from './health.ts'
import { jsonBody } from './json-body.ts'
import { mcpRoutes } from './mcp.ts'
import { observeRequests } from './observe.ts'
import { opsRoutes } from './ops.ts'
import { overviewRoutes } from './overview.ts'
import { permissionsRoutes } from './permissions.ts'
import { requestGuard } from './request-guard.ts'
import { schedulesRoutes } from './schedules.ts'
import { sessionEventsRoutes } from './session-events.ts'
import { sessionsRoutes } from './sessions.ts'
import { turnsRoutes } from './turns.ts'
import { webhooksRoutes } from './webhooks.ts'
import { workspacesRoutes } from './workspaces.ts'
import { workerRoutes } from './worker.ts'

/** What the HTTP surface calls: one service per route module, and the settings of the guards. */
export interface AppDeps {
  log: Logger
  apiKeys: readonly string[]
  /** Host names served without API keys besides loopback ones (the public URL's among them). */
  allowedHosts: readonly string[]
  corsOrigins: readonly string[]
  tokenKey: Uint8Array
  maxBodyBytes: number
  /** How long a cancel of a running turn waits for it to end before answering. */
  cancelWaitMs: number
  checkHealth(): Promise<void>
  /** Throws (a 503 saying why) unless the broker is ready to serve. */
  checkReady(): Promise<void>
  metrics: Metrics
  /** /metrics takes the API keys unless CCBROKER_METRICS_PUBLIC. */
  metricsPublic: boolean
  /** Writes one access log line per request (at its level), or nothing. */
  access: (fields: Record<string, unknown>) => void
  sessions: SessionService
  overview: SessionOverview
  sessionEvents: SessionEvents
  ingress: WorkerIngress
  permissions: Permissions
  scheduleTasks: ScheduleTasks
  mcp: WorkerMcp
  directory: TurnDirectory
  queue: TurnQueue
  streams: TurnStreams
  budgets: Budgets
  webhooks: WebhookService
}

/** The whole HTTP app: error mapping, limits, docs, health, then every route module. */
export function createApp(deps: AppDeps) {
  const { apiKeys } = deps
  // No normalising: Elysia's default turns a string where an object belongs into {"0": …}
  // and TypeBox's strips open payloads. Schemas say themselves whether extra keys are allowed.
  return new Elysia({ normalize: false })
    .use(errorMapper(deps.log))
    .use(observeRequests({ access: deps.access, metrics: deps.metrics }))
    .use(
      requestGuard({
        apiKeysSet: apiKeys.length > 0,
        allowedHosts: deps.allowedHosts,
        corsOrigins: deps.corsOrigins,
      }),
    )
    .use(bodyLimit(deps.maxBodyBytes))
    .use(jsonBody(deps.maxBodyBytes))
    .use(docs())
    .use(consoleRoutes())
    .use(healthRoutes(deps.checkHealth))
    .use(
      opsRoutes({
        ready: deps.checkReady,
        metrics: deps.metrics,
        apiKeys,
        metricsPublic: deps.metricsPublic,
      }),
    )
    .use(sessionsRoutes({ sessions: deps.sessions, budgets: deps.budgets, apiKeys }))
    .use(overviewRoutes({ overview: deps.overview, apiKeys }))
    .use(workspacesRoutes({ budgets: deps.budgets, apiKeys }))
    .use(webhooksRoutes({ webhooks: deps.webhooks, apiKeys }))
    .use(sessionEventsRoutes({ sessionEvents: deps.sessionEvents, apiKeys }))
    .use(workerRoutes({ ingress: deps.ingress, tokenKey: deps.tokenKey }))
    .use(permissionsRoutes({ permissions: deps.permissions, apiKeys }))
    .use(schedulesRoutes({ scheduleTasks: deps.scheduleTasks, sessions: deps.sessions, apiKeys }))
    .use(
      mcpRoutes({
        mcp: deps.mcp,
        directory: deps.directory,
        ingress: deps.ingress,
        tokenKey: deps.tokenKey,
      }),
    )
    .use(
      turnsRoutes({
        queue: deps.queue,
        streams: deps.streams,
        apiKeys,
        cancelWaitMs: deps.cancelWaitMs,
      }),
    )
}

/** The app's type, for Elysia Eden (`treaty<App>(url)`). */
export type App = ReturnType<typeof createApp>

export interface Listening {
  /** The address it listens on, as a URL. */
  url: string
  /** How a process on this host reaches it (a wildcard address becomes a loopback one). */
  localUrl: string
  port: number
  stop(): Promise<void>
}

const WILDCARD_LOOPBACK: Record<string, string> = { '0.0.0.0': '127.0.0.1', '::': '[::1]' }

/** Starts serving `app` on host:port (0 picks a free port). */
export function serveApp(
  app: App,
  opts: { hostname: string; port: number; maxBodyBytes: number },
): Listening {
  app.listen({
    hostname: opts.hostname,
    port: opts.port,
    // Elysia's default reusePort lets a second broker silently share the port.
    reusePort: false,
    // Our limits answer 413 in JSON (from Content-Length, and while the body streams); Bun's
    // own cap, which answers an empty 413, must never be the one a caller meets.
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    idleTimeout: 60,
  })
  const port = app.server!.port!
  const host = opts.hostname.includes(':') ? `[${opts.hostname}]` : opts.hostname
  return {
    url: `http://${host}:${port}`,
    localUrl: `http://${WILDCARD_LOOPBACK[opts.hostname] ?? host}:${port}`,
    port,
    stop: async () => void (await app.stop(true)),
  }
}
