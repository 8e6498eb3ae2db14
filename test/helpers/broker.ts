import type { Broker } from '../../src/broker.ts'
import type { Config } from '../../src/config.ts'
import type { Logger } from '../../src/log.ts'
import { startTestBroker as startPackageBroker } from '../../src/testing/test-broker.ts'
import type { DatabaseKind } from './databases.ts'

export const TEST_SECRET = 'test-secret-test-secret-test-secret-0123456789'

export interface TestBroker extends AsyncDisposable {
  url: string
  broker: Broker
  config: Readonly<Config>
  dataDir: string
  /** Calls the external API with JSON; answers status and parsed body. */
  api(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{
    status: number
    body: any
    headers: Headers
  }>
  stop(): Promise<void>
}

/**
 * The package's startTestBroker (cc-broker/testing) on a database of `db`, with the settings a
 * test gives in `env` and no worker unless it names one (CCBROKER_CLAUDE_BIN); `api` calls it.
 */
export async function startTestBroker(opts: {
  db: DatabaseKind
  env?: Record<string, string>
  /** The broker's logger (default: one at CCBROKER_LOG_LEVEL), e.g. to capture its records. */
  log?: Logger
  /**
   * An existing Postgres database (another test broker's `config.databaseUrl`) to share instead
   * of a fresh one of `db`: a second replica. It is neither created nor dropped here.
   */
  databaseUrl?: string
}): Promise<TestBroker> {
  const database = opts.databaseUrl
    ? { url: opts.databaseUrl, drop: async () => {} }
    : await opts.db.create()
  let b: Awaited<ReturnType<typeof startPackageBroker>>
  try {
    b = await startPackageBroker({
      worker: false,
      databaseUrl: database.url ?? undefined,
      // Replicas of one database share the secret (each other's worker tokens).
      config: { ...(database.url ? { CCBROKER_JWT_SECRET: TEST_SECRET } : {}), ...opts.env },
      log: opts.log,
    })
  } catch (err) {
    await database.drop()
    throw err
  }
  let stopped = false
  const stop = async () => {
    if (stopped) return
    stopped = true
    await b.stop()
    await database.drop()
  }
  return {
    url: b.url,
    broker: b.broker,
    config: b.config,
    dataDir: b.dataDir,
    async api(method, path, body, headers = {}) {
      const res = await fetch(b.url + path, {
        method,
        headers: {
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
        body:
          body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      })
      const text = await res.text()
      let parsed: unknown = text
      try {
        parsed = JSON.parse(text)
      } catch {
        // Left as text: a test asserting JSON will fail on it, as it should.
      }
      return { status: res.status, body: parsed, headers: res.headers }
    },
    stop,
    [Symbol.asyncDispose]: stop,
  }
}
