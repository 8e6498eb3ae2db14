import { chmod, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createApp, serveApp } from './api/app.ts'
import { loadOrCreateSecret } from './auth/secret-file.ts'
import { secretKey } from './auth/worker-token.ts'
import { secretValues, type Config } from './config.ts'
import type { Database } from './db/handle.ts'
import { openDatabase } from './db/open.ts'
import { listEventsSince, maxEventSeq } from './db/repos/events.ts'
import { pingDatabase } from './db/repos/health.ts'
import { countAllQueuedTurns } from './db/repos/turns.ts'
import { pendingMigrations } from './db/migrate.ts'
import { UnavailableError } from './errors.ts'
import { createMetrics } from './metrics.ts'
import { createBus } from './events/bus.ts'
import { createDedup } from './events/dedup.ts'
import { createEventLog } from './events/log.ts'
import { bridgeNotifications } from './events/notify.ts'
import { createLogger, redactingLogger, type Logger } from './log.ts'
import { createExecutorRegistryClient } from './mcp/backends/executor-registry.ts'
import { createImBridgeClient } from './mcp/backends/im-bridge.ts'
import { createWorkerMcp } from './mcp/server.ts'
import { createSessionEvents } from './sessions/client-events.ts'
import { createGenerations, GENERATIONS_CHANNEL } from './sessions/generations.ts'
import { createSessionOverview } from './sessions/overview.ts'
import { createSessionService } from './sessions/service.ts'
import { createWorkerIngress } from './sessions/worker-ingress.ts'
import { createTurnDirectory } from './turns/directory.ts'
import { createTurnExecutor } from './turns/executor.ts'
import type { WarmWorker } from './turns/worker-processes.ts'
import { createWarmPool } from './turns/warm-pool.ts'
import { createWorkerStreams } from './sessions/worker-streams.ts'
import { bumpWorkspaceRevision, readWorkspaceRevision } from './db/repos/workspace-revisions.ts'
import { createOutboundFetch } from './outbound/guard.ts'
import { createOwnerLiveness, newOwnerId } from './turns/owner.ts'
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
import { createBudgets } from './usage/budgets.ts'
import { createWebhookDispatcher } from './webhooks/dispatcher.ts'
import { createWebhookService } from './webhooks/service.ts'
import { createLocalStore } from './workspace/local.ts'
import { createWorkspaceLock } from './workspace/lock.ts'
import { createOpenVikingStore } from './workspace/openviking.ts'
import { checkOpenViking } from './workspace/openviking-health.ts'
import { createWorkspaceSync } from './workspace/sync.ts'

/** How often spooled workspace changes are tried again without waiting for a turn. */
const SPOOL_FLUSH_MS = 30_000
/** How long other replicas leave a turn to the broker that keeps its session's worker warm. */
const WARM_PREFERENCE_MS = 2_000
/** Where replicas tell each other that a turn was queued. */
const TURNS_CHANNEL = 'cc_broker_turns'

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
  const startedAt = performance.now()
  // What the broker keeps is for its user only, even where the embedding process's umask is
  // looser (`serve` runs with umask 077 anyway; workers always do, see spawnClaude).
  for (const dir of new Set([config.dataDir, config.runDir, config.workspaceDir])) {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await chmod(dir, 0o700)
  }
  let logger = log ?? createLogger(config.logLevel)
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    log: logger,
  })
  try {
    const secret = config.jwtSecret ?? (await loadOrCreateSecret(config.dataDir))
    const tokenKey = secretKey(secret)
    logger = redactingLogger(logger, [...secretValues(config), secret])
    const db = database.db
    // One id per broker start: on leases, and on NOTIFYs so a broker skips its own.
    const owner = newOwnerId()
    const metrics = createMetrics()
    let stopping = false

    // The event log and its live fan-out.
    const bus = createBus({
      readSince: (sessionId, since, limit) => listEventsSince(db, sessionId, since, limit),
      maxSeq: (sessionId) => maxEventSeq(db, sessionId),
      bufferEvents: config.sseBufferEvents,
      log: logger,
    })
    await bridgeNotifications(database, bus, owner)
    const events = createEventLog({
      database,
      bus,
      dedup: createDedup(),
      origin: owner,
      onAppended(rows) {
        for (const row of rows) {
          // Partial messages are live only (not kept): they are not counted as log events.
          if (row.ephemeral) continue
          metrics.eventsAppended.inc({ source: row.source })
          if (row.source === 'broker' && row.eventType === 'done')
            metrics.turns.inc({ state: String(row.payload.state) })
        }
      },
    })

    // Sessions and the worker protocol. Workers learn the broker's URL once it listens: the
    // ones it starts use its own address, external ones the public URL.
    let localUrl = ''
    let publicUrl = config.publicUrl ?? ''
    const generations = createGenerations({ database, origin: owner, log: logger })
    if (database.driver === 'postgres')
      await database.listen(GENERATIONS_CHANNEL, generations.onNotify)
    const sessions = createSessionService({
      db,
      tokenKey,
      tokenTtlSeconds: config.workerTokenTtlSeconds,
      publicUrl: () => publicUrl,
      generations,
      // ccr workers rebuild a conversation from this broker's internal events, which a fork
      // does not copy: forking is a stdio feature.
      forkRefusal:
        config.workerTransport === 'ccr'
          ? 'forking needs the stdio worker transport (CCBROKER_WORKER_TRANSPORT=stdio): ccr ' +
            'workers rebuild their conversation from the source session’s internal events, ' +
            'which a fork does not copy'
          : null,
    })
    const sessionEvents = createSessionEvents({
      db,
      events,
      bus,
      keepaliveMs: config.sseKeepaliveMs,
    })
    const directory = createTurnDirectory(db)
    const workerStreams = createWorkerStreams()
    const ingress = createWorkerIngress({
      db,
      events,
      bus,
      generations,
      keepaliveMs: config.sseKeepaliveMs,
      turnIdFor: directory.lookup,
      knownTurnIdFor: directory.known,
      streams: workerStreams,
    })

    // Spend, budgets and webhooks.
    const webhookDispatcher = createWebhookDispatcher({
      db,
      fetch: createOutboundFetch({ allow: config.webhookAllow }),
      pollMs: config.webhookPollMs,
      retryBaseMs: config.webhookRetryBaseMs,
      maxAgeMs: config.webhookMaxAgeMs,
      timeoutMs: config.webhookTimeoutMs,
      log: logger,
    })
    const budgets = createBudgets({
      db,
      events,
      defaultWorkspaceBudgetUsd: config.workspaceBudgetUsd,
      onWebhook: webhookDispatcher.wake,
    })
    const webhooks = createWebhookService({ db, allow: config.webhookAllow })

    // The workers' tools and the workspaces.
    const permissions = createPermissions({
      db,
      events,
      policy: config.permissionPolicy,
      log: logger,
    })
    const scheduleTasks = createScheduleTasks({
      db,
      minIntervalSeconds: config.scheduleMinIntervalSeconds,
      maxTasks: config.scheduleMaxTasks,
    })
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
      fetch: createOutboundFetch({ allow: config.fetchAllow }),
      log: logger,
    })
    const store =
      config.workspaceStore === 'openviking'
        ? createOpenVikingStore({
            url: config.openVikingUrl!,
            apiKey: config.openVikingApiKey ?? undefined,
            rootUri: config.openVikingRootUri,
            retry: { budgetMs: config.storeRetryMs },
            log: logger,
          })
        : createLocalStore({ root: config.workspaceDir })
    // A server too old for the store (or a ROOT key) fails every push: said at once, not at the
    // first turn. The broker starts either way; the store may come up later.
    if (config.workspaceStore === 'openviking')
      void checkOpenViking({
        url: config.openVikingUrl!,
        apiKey: config.openVikingApiKey ?? undefined,
      }).then((found) => {
        if (!found.ok)
          logger.warn('the OpenViking store cannot work yet', { problem: found.problem })
      })
    const sync = createWorkspaceSync({
      store,
      lock: createWorkspaceLock(database),
      spoolDir: join(config.dataDir, 'spool'),
      log: logger,
      secrets: () => [...secretValues(config), secret],
      revisions: {
        read: (workspaceId) => readWorkspaceRevision(db, workspaceId),
        bump: (workspaceId) => bumpWorkspaceRevision(db, workspaceId),
      },
    })

    // Turns: workers, the executor that runs one turn, the runner that claims them, the queue.
    const claude = await resolveClaudeBin(config.claudeBin)
    if (!claude.path) logger.warn(claude.problem)
    const transport: WorkerTransport | null = !claude.path
      ? null
      : config.workerTransport === 'ccr'
        ? createCcrTransport({
            config,
            bin: claude.path,
            db,
            sessions,
            events,
            localUrl: () => localUrl,
            streams: workerStreams,
          })
        : createStdioTransport({ config, bin: claude.path, sessions, events })
    // Warm workers: a session's process waits for its next turn; one superseded elsewhere stops.
    const pool = createWarmPool<WarmWorker>({
      db,
      owner,
      idleMs: config.workerIdleMs,
      log: logger,
    })
    generations.onEnded((s, upTo, exact) => void pool.superseded(s, upTo, exact))
    const executor = createTurnExecutor({
      pool,
      db,
      runDir: config.runDir,
      turnMaxMs: config.turnMaxMs,
      stopGraceMs: config.stopGraceMs,
      leaseMs: config.leaseMs,
      events,
      bus,
      transport,
      unavailable: claude.problem,
      directory,
      generations,
      owner,
      metrics,
      log: logger,
      budgets,
      hooks: createWorkerSetup({
        config,
        mcp,
        permissions,
        sync,
        storeName: store.describe(),
        storeKind: store.name,
        metrics,
        events,
        localUrl: () => localUrl,
      }),
    })
    // Other brokers see this one alive by its presence lock; turns of one that is gone resume
    // elsewhere within seconds, without waiting for their leases to run out.
    const presence = await database.holdPresence(owner)
    const runner = createTurnRunner({
      db,
      events,
      executor,
      owner,
      maxWorkers: config.maxWorkers,
      pool,
      warmPreferenceMs: WARM_PREFERENCE_MS,
      leaseMs: config.leaseMs,
      liveness: createOwnerLiveness({
        db,
        self: owner,
        exclusive: database.driver === 'pglite',
        presence: presence !== null,
        log: logger,
      }),
      recoverEveryMs: presence ? 500 : config.leaseMs,
      log: logger,
    })
    if (database.driver === 'postgres')
      await database.listen(TURNS_CHANNEL, (from) => {
        if (from !== owner) runner.wake()
      })
    const queue = createTurnQueue({
      db,
      events,
      depth: config.queueDepth,
      unavailable: claude.path ? null : claude.problem,
      // Every replica's runner: the one keeping the session's worker warm claims its turn first.
      wake: () => {
        runner.wake()
        if (database.driver === 'postgres')
          void database.notify(TURNS_CHANNEL, owner).catch(() => {})
      },
      cancelRunning: runner.cancel,
      budgets,
    })
    const scheduler = createScheduler({
      db,
      queue,
      log: logger,
      pollMs: config.schedulerPollMs,
    })
    const streams = createTurnStreams({ db, bus, keepaliveMs: config.sseKeepaliveMs })
    metrics.observe({
      queuedTurns: () => countAllQueuedTurns(db),
      runningWorkers: runner.activeCount,
      idleWorkers: pool.size,
      listeners: () => bus.listenerCount(),
    })
    const accessLevel = config.accessLog

    const publicHost = config.publicUrl ? new URL(config.publicUrl).hostname.toLowerCase() : null
    const app = createApp({
      log: logger,
      apiKeys: config.apiKeys,
      allowedHosts: [...config.allowedHosts, ...(publicHost ? [publicHost] : [])],
      corsOrigins: config.corsOrigins,
      tokenKey,
      maxBodyBytes: config.maxBodyBytes,
      cancelWaitMs: config.stopGraceMs * 4 + 5_000,
      checkHealth: () => pingDatabase(db),
      async checkReady() {
        if (stopping) throw new UnavailableError('the broker is shutting down')
        await pingDatabase(db)
        const pending = await pendingMigrations(db)
        if (pending.length > 0)
          throw new UnavailableError(`migrations not applied: ${pending.join(', ')}`)
      },
      metrics,
      metricsPublic: config.metricsPublic,
      access: accessLevel === 'silent' ? () => {} : (fields) => logger[accessLevel]('http', fields),
      sessions,
      overview: createSessionOverview({ db }),
      sessionEvents,
      ingress,
      permissions,
      scheduleTasks,
      mcp,
      directory,
      queue,
      streams,
      budgets,
      webhooks,
    })
    // Before any worker can reach this broker: an orphan of a dead broker must not post under
    // an epoch recovery is about to end.
    await runner.recover()
    const server = serveApp(app, {
      hostname: config.host,
      port: config.port,
      maxBodyBytes: config.maxBodyBytes,
    })
    localUrl = server.localUrl
    if (!publicUrl) publicUrl = localUrl
    if (config.allowNoAuth && config.apiKeys.length === 0)
      logger.warn('serving without API keys on a non-loopback address (CCBROKER_ALLOW_NO_AUTH)', {
        host: config.host,
      })
    if (!config.publicUrl && server.localUrl !== server.url)
      logger.warn('set CCBROKER_PUBLIC_URL: bridges answer a loopback api_base_url', {
        api_base_url: publicUrl,
      })
    runner.start()
    scheduler.start()
    webhookDispatcher.start()
    // Changes spooled while the store was down go out once it is back, turn or no turn.
    const flusher = setInterval(() => void sync.flushAll(), SPOOL_FLUSH_MS)
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
        stopping = true
        // Every step runs even when one fails (a database outage): a stop always completes.
        const step = async (what: string, fn: () => Promise<unknown> | unknown) => {
          try {
            await fn()
          } catch (err) {
            logger.error(`stopping: ${what} failed`, { err })
          }
        }
        clearInterval(flusher)
        await step('the scheduler', () => scheduler.stop())
        await step('the idle workers', () => pool.stopAll())
        await step('the runner', () => runner.stop())
        await step('the webhook dispatcher', () => webhookDispatcher.stop())
        await step('the presence lock', () => presence?.release())
        await step('the listeners', () => bus.closeAll())
        await step('the HTTP server', () => server.stop())
        await step('the database', () => database.close())
      },
    }
  } catch (err) {
    await database.close()
    throw err
  }
}
