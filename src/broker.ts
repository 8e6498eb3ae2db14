import { join } from 'node:path'
import { createApp, serveApp } from './api/app.ts'
import { loadOrCreateSecret } from './auth/secret-file.ts'
import { secretKey } from './auth/worker-token.ts'
import { secretValues, type Config } from './config.ts'
import type { Database } from './db/handle.ts'
import { openDatabase } from './db/open.ts'
import { listEventsSince, maxEventSeq } from './db/repos/events.ts'
import { pingDatabase } from './db/repos/health.ts'
import { createBus } from './events/bus.ts'
import { createDedup } from './events/dedup.ts'
import { createEventLog } from './events/log.ts'
import { bridgeNotifications } from './events/notify.ts'
import { createLogger, type Logger } from './log.ts'
import { createExecutorRegistryClient } from './mcp/backends/executor-registry.ts'
import { createImBridgeClient } from './mcp/backends/im-bridge.ts'
import { createWorkerMcp } from './mcp/server.ts'
import { createSessionEvents } from './sessions/client-events.ts'
import { createSessionService } from './sessions/service.ts'
import { createWorkerIngress } from './sessions/worker-ingress.ts'
import { createTurnDirectory } from './turns/directory.ts'
import { createTurnExecutor } from './turns/executor.ts'
import { newOwnerId } from './turns/owner.ts'
import { createPermissions } from './turns/permissions.ts'
import { createTurnQueue } from './turns/queue.ts'
import { createTurnRunner } from './turns/runner.ts'
import { createScheduleTasks } from './turns/schedule-tasks.ts'
import { createScheduler } from './turns/scheduler.ts'
import { createTurnStreams } from './turns/stream.ts'
import { createCcrTransport } from './worker/ccr.ts'
import { resolveClaudeBin } from './worker/resolve-bin.ts'
import { createStdioTransport } from './worker/stdio.ts'
import type { WorkerTransport } from './worker/transport.ts'
import { createWorkerSetup } from './worker-setup.ts'
import { createLocalStore } from './workspace/local.ts'
import { createWorkspaceLock } from './workspace/lock.ts'
import { createOpenVikingStore } from './workspace/openviking.ts'
import { createWorkspaceSync } from './workspace/sync.ts'

export interface Broker {
  url: string
  port: number
  database: Database
  log: Logger
  stop(): Promise<void>
}

/**
 * The composition root: builds every service once, each from the ones before it, and serves
 * them over one HTTP app.
 */
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
    // One id per broker start: on leases, and on NOTIFYs so a broker skips its own.
    const owner = newOwnerId()

    // The event log and its live fan-out.
    const bus = createBus({
      readSince: (sessionId, since, limit) => listEventsSince(db, sessionId, since, limit),
      maxSeq: (sessionId) => maxEventSeq(db, sessionId),
      bufferEvents: config.sseBufferEvents,
      log: logger,
    })
    await bridgeNotifications(database, bus, owner)
    const events = createEventLog({ database, bus, dedup: createDedup(), origin: owner })

    // Sessions and the worker protocol. Workers learn the broker's URL once it listens.
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

    // The workers' tools and the workspaces.
    const permissions = createPermissions({
      db,
      events,
      policy: config.permissionPolicy,
      log: logger,
    })
    const scheduleTasks = createScheduleTasks({ db })
    const mcp = createWorkerMcp({
      registry: config.executorRegistryUrl
        ? createExecutorRegistryClient({
            url: config.executorRegistryUrl,
            timeoutMs: config.executorTimeoutMs,
          })
        : null,
      imBridge:
        config.imBridgeUrl && config.imBridgeSecret
          ? createImBridgeClient({ url: config.imBridgeUrl, secret: config.imBridgeSecret })
          : null,
      schedules: scheduleTasks,
      log: logger,
    })
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
      secrets: () => [...secretValues(config), secret],
    })

    // Turns: workers, the executor that runs one turn, the runner that claims them, the queue.
    const claude = await resolveClaudeBin(config.claudeBin)
    if (!claude.path) logger.warn(claude.problem)
    const transport: WorkerTransport | null = !claude.path
      ? null
      : config.workerTransport === 'ccr'
        ? createCcrTransport({ config, bin: claude.path, db, sessions, events })
        : createStdioTransport({ config, bin: claude.path, sessions, events })
    const executor = createTurnExecutor({
      db,
      runDir: config.runDir,
      turnMaxMs: config.turnMaxMs,
      stopGraceMs: config.stopGraceMs,
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
    const queue = createTurnQueue({
      db,
      events,
      sessions,
      depth: config.queueDepth,
      unavailable: claude.path ? null : claude.problem,
      wake: runner.wake,
      cancelRunning: runner.cancel,
    })
    const scheduler = createScheduler({
      db,
      queue,
      log: logger,
      pollMs: config.schedulerPollMs,
    })
    const streams = createTurnStreams({ db, bus, keepaliveMs: config.sseKeepaliveMs })

    const app = createApp({
      log: logger,
      apiKeys: config.apiKeys,
      tokenKey,
      maxBodyBytes: config.maxBodyBytes,
      cancelWaitMs: config.stopGraceMs * 4 + 5_000,
      checkHealth: () => pingDatabase(db),
      sessions,
      sessionEvents,
      ingress,
      permissions,
      mcp,
      directory,
      queue,
      streams,
    })
    const server = serveApp(app, {
      hostname: config.host,
      port: config.port,
      maxBodyBytes: config.maxBodyBytes,
    })
    if (!publicUrl) publicUrl = server.url
    await runner.start()
    scheduler.start()
    logger.info('broker listening', {
      url: server.url,
      database: database.driver,
      startupMs: Math.round(performance.now() - startedAt),
    })

    let stopped = false
    return {
      url: server.url,
      port: server.port,
      database,
      log: logger,
      async stop() {
        if (stopped) return
        stopped = true
        scheduler.stop()
        await runner.stop()
        bus.closeAll()
        await server.stop()
        await database.close()
      },
    }
  } catch (err) {
    await database.close()
    throw err
  }
}
