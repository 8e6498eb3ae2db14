import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBroker, type Broker } from '../../src/broker.ts'
import { loadConfig, type Config } from '../../src/config.ts'
import type { Logger } from '../../src/log.ts'
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

/** A real broker on 127.0.0.1, port 0, in a temp data dir; disposing stops it and cleans up. */
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
  const dataDir = await mkdtemp(join(tmpdir(), 'ccb-test-'))
  const database = opts.databaseUrl
    ? { url: opts.databaseUrl, drop: async () => {} }
    : await opts.db.create()
  const config = loadConfig({
    CCBROKER_PORT: '0',
    CCBROKER_DATA_DIR: dataDir,
    CCBROKER_LOG_LEVEL: process.env.CCBROKER_TEST_LOG_LEVEL ?? 'silent',
    ...(database.url
      ? { CCBROKER_DATABASE_URL: database.url, CCBROKER_JWT_SECRET: TEST_SECRET }
      : {}),
    ...opts.env,
  })
  let broker: Broker
  try {
    broker = await startBroker(config, opts.log)
  } catch (err) {
    await database.drop()
    await rm(dataDir, { recursive: true, force: true })
    throw err
  }
  let stopped = false
  const stop = async () => {
    if (stopped) return
    stopped = true
    await broker.stop()
    await database.drop()
    await rm(dataDir, { recursive: true, force: true })
  }
  return {
    url: broker.url,
    broker,
    config,
    dataDir,
    async api(method, path, body, headers = {}) {
      const res = await fetch(broker.url + path, {
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
