import { Elysia } from 'elysia'
import { sql } from 'drizzle-orm'
import { bodyLimit, docs, errorMapper, healthRoutes } from './api/app.ts'
import { sessionEventsRoutes } from './api/session-events.ts'
import { sessionsRoutes } from './api/sessions.ts'
import { workerRoutes } from './api/worker.ts'
import { loadOrCreateSecret } from './auth/secret-file.ts'
import { secretKey } from './auth/worker-token.ts'
import type { Config } from './config.ts'
import { openDatabase, type Database } from './db/open.ts'
import { listEventsSince, maxEventSeq } from './db/repos/events.ts'
import { createBus } from './events/bus.ts'
import { createDedup } from './events/dedup.ts'
import { createEventLog } from './events/log.ts'
import { bridgeNotifications } from './events/notify.ts'
import { createLogger, type Logger } from './log.ts'
import { createSessionEvents } from './sessions/client-events.ts'
import { createSessionService } from './sessions/service.ts'
import { createWorkerIngress } from './sessions/worker-ingress.ts'
import { turnsRoutes } from './api/turns.ts'
import { createTurnDirectory } from './turns/directory.ts'
import { createTurnExecutor } from './turns/executor.ts'
import { createTurnQueue } from './turns/queue.ts'
import { createTurnRunner, newOwnerId } from './turns/runner.ts'
import { createTurnStreams } from './turns/stream.ts'
import { resolveClaudeBin } from './worker/resolve-bin.ts'
import { createCcrTransport } from './worker/ccr.ts'
import { createStdioTransport } from './worker/stdio.ts'
import type { WorkerTransport } from './worker/transport.ts'
import { mcpRoutes } from './api/mcp.ts'
import { permissionsRoutes } from './api/permissions.ts'
import { createExecutorRegistryClient } from './mcp/backends/executor-registry.ts'
import { createImBridgeClient } from './mcp/backends/im-bridge.ts'
import { createWorkerMcp } from './mcp/server.ts'
import { createPermissions } from './turns/permissions.ts'
import { createSchedules } from './turns/schedules.ts'
import { createWorkerSetup } from './turns/worker-setup.ts'
import { createLocalStore } from './workspace/local.ts'
import { createWorkspaceLock } from './workspace/lock.ts'
import { createOpenVikingStore } from './workspace/openviking.ts'
import { createWorkspaceSync } from './workspace/sync.ts'
import { join } from 'node:path'

export interface Broker {
  url: string
  port: number
  database: Database
  log: Logger
  stop(): Promise<void>
}

/** The composition root: builds every service once and wires them into one HTTP app. */
export async function startBroker(config: Readonly<Config>, log?: Logger): Promise<Broker> {
  const logger = log ?? createLogger(config.logLevel)
  const startedAt = performance.now()
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    log: logger,
  })
  try {
    const secret = config.jwtSecret ?? (await loadOrCreateSecret(config.dataDir))
    const tokenKey = secretKey(secret)
    const db = database.db
    const bus = createBus({
      readSince: (sessionId, since, limit) => listEventsSince(db, sessionId, since, limit),
      maxSeq: (sessionId) => maxEventSeq(db, sessionId),
      bufferEvents: config.sseBufferEvents,
      log: logger,
    })
    // One id per broker start: on leases, and on NOTIFYs so a broker skips its own.
    const owner = newOwnerId()
    await bridgeNotifications(database, bus, owner)
    const events = createEventLog({ database, bus, dedup: createDedup(), origin: owner })
    let publicUrl = config.publicUrl ?? ''
    const sessions = createSessionService({
      db,
      tokenKey,
      tokenTtlSeconds: config.workerTokenTtlSeconds,
      publicUrl: () => publicUrl,
    })
    const sessionEvents = createSessionEvents({
      db,
      events,
      bus,
      keepaliveMs: config.sseKeepaliveMs,
    })
    const directory = createTurnDirectory(db)
    const ingress = createWorkerIngress({
      db,
      events,
      bus,
      keepaliveMs: config.sseKeepaliveMs,
      turnIdFor: directory.lookup,
    })

    const claude = await resolveClaudeBin(config.claudeBin)
    if (!claude.path) logger.warn(claude.problem)
    const transport: WorkerTransport | null = !claude.path
      ? null
      : config.workerTransport === 'ccr'
        ? createCcrTransport({ config, bin: claude.path, db, sessions, events })
        : createStdioTransport({ config, bin: claude.path, sessions, events })
    const permissions = createPermissions({
      db,
      events,
      policy: config.permissionPolicy,
      log: logger,
    })
    // The queue and the scheduler need each other only through the runner's wake-up.
    let wakeRunner = () => {}
    const queue = createTurnQueue({
      db,
      events,
      sessions,
      depth: config.queueDepth,
      unavailable: claude.path ? null : claude.problem,
      wake: () => wakeRunner(),
      cancelRunning: (turnId) => runner.cancel(turnId),
    })
    const schedules = createSchedules({
      db,
      queue,
      log: logger,
      pollMs: config.schedulerPollMs,
    })
    const registry = config.executorRegistryUrl
      ? createExecutorRegistryClient({
          url: config.executorRegistryUrl,
          timeoutMs: config.executorTimeoutMs,
        })
      : null
    const imBridge =
      config.imBridgeUrl && config.imBridgeSecret
        ? createImBridgeClient({ url: config.imBridgeUrl, secret: config.imBridgeSecret })
        : null
    const mcp = createWorkerMcp({ registry, imBridge, schedules, log: logger })
    const store =
      config.workspaceStore === 'openviking'
        ? createOpenVikingStore({
            url: config.openVikingUrl!,
            apiKey: config.openVikingApiKey ?? undefined,
            rootUri: config.openVikingRootUri,
            log: logger,
          })
        : createLocalStore({ root: config.workspaceDir })
    const sync = createWorkspaceSync({
      store,
      lock: createWorkspaceLock(database),
      spoolDir: join(config.dataDir, 'spool'),
      log: logger,
      // Credentials only: a model name or base URL is in every transcript, which must be stored.
      secrets: () => [
        ...Object.entries(config.anthropicEnv)
          .filter(([k]) => /KEY|TOKEN|SECRET|HEADERS/.test(k))
          .map(([, v]) => v),
        secret,
      ],
    })
    const executor = createTurnExecutor({
      db,
      config,
      events,
      bus,
      transport,
      unavailable: claude.problem,
      directory,
      owner,
      log: logger,
      hooks: createWorkerSetup({
        config,
        mcp,
        permissions,
        sync,
        storeName: store.describe(),
        events,
        publicUrl: () => publicUrl,
      }),
    })
    const runner = createTurnRunner({
      db,
      events,
      executor,
      owner,
      maxWorkers: config.maxWorkers,
      leaseMs: config.leaseMs,
      exclusive: database.driver === 'pglite',
      log: logger,
    })
    wakeRunner = runner.wake
    const streams = createTurnStreams({ db, bus, keepaliveMs: config.sseKeepaliveMs })

    // No normalising: Elysia's default turns a string where an object belongs into {"0": …}
    // and TypeBox's strips open payloads. Schemas say themselves whether extra keys are allowed.
    const app = new Elysia({ normalize: false })
      .use(errorMapper(logger))
      .use(bodyLimit(config.maxBodyBytes))
      .use(docs())
      .use(healthRoutes(async () => void (await db.execute(sql`select 1`))))
      .use(sessionsRoutes({ sessions, apiKeys: config.apiKeys }))
      .use(sessionEventsRoutes({ sessionEvents, apiKeys: config.apiKeys }))
      .use(workerRoutes({ ingress, tokenKey }))
      .use(permissionsRoutes({ permissions, apiKeys: config.apiKeys }))
      .use(mcpRoutes({ mcp, directory, tokenKey }))
      .use(
        turnsRoutes({
          queue,
          streams,
          apiKeys: config.apiKeys,
          cancelWaitMs: config.stopGraceMs * 4 + 5_000,
        }),
      )
      .listen({
        hostname: config.host,
        port: config.port,
        // Elysia's default reusePort lets a second broker silently share the port (bun-stack §2).
        reusePort: false,
        // bodyLimit answers 413 in JSON from Content-Length; Bun's own cap is the backstop.
        maxRequestBodySize: config.maxBodyBytes * 2 + 1024 * 1024,
        idleTimeout: 60,
      })
    const server = app.server!
    const port = server.port!
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`
    if (!publicUrl) publicUrl = url
    await runner.start()
    schedules.start()
    logger.info('broker listening', {
      url,
      database: database.driver,
      startupMs: Math.round(performance.now() - startedAt),
    })

    let stopped = false
    return {
      url,
      port,
      database,
      log: logger,
      async stop() {
        if (stopped) return
        stopped = true
        schedules.stop()
        await runner.stop()
        bus.closeAll()
        await app.stop(true)
        await database.close()
      },
    }
  } catch (err) {
    await database.close()
    throw err
  }
}
