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
    await bridgeNotifications(database, bus)
    const events = createEventLog({ database, bus, dedup: createDedup() })
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
    const ingress = createWorkerIngress({ db, events, bus, keepaliveMs: config.sseKeepaliveMs })

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
