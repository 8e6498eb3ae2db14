// The two databases a benchmark run targets: a broker on each, plus direct access to the same
// database for the raw-insert ceiling. PGlite lives in a temp data dir; Postgres in a database
// created for the run and dropped after it (`with (force)`), even when the run fails.
import type { PGlite } from '@electric-sql/pglite'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import type { Broker } from '../../src/broker.ts'

/** This checkout's src/, or another one's (`--src`) to compare a change against it. */
export const DEFAULT_SRC = new URL('../../src/', import.meta.url).pathname

/** The broker's entry points, from `srcDir`. */
export async function brokerModules(srcDir: string) {
  const [broker, config, log] = await Promise.all([
    import(join(srcDir, 'broker.ts')) as Promise<typeof import('../../src/broker.ts')>,
    import(join(srcDir, 'config.ts')) as Promise<typeof import('../../src/config.ts')>,
    import(join(srcDir, 'log.ts')) as Promise<typeof import('../../src/log.ts')>,
  ])
  return {
    startBroker: broker.startBroker,
    loadConfig: config.loadConfig,
    createLogger: log.createLogger,
  }
}

const SECRET = 'bench-secret-bench-secret-bench-secret-0123'

const COLUMNS = 'session_id, event_id, event_type, source, epoch, payload, ephemeral, turn_id'

export interface RawRow {
  sessionId: string
  payload: Record<string, unknown> & { uuid: string; type: string }
}

export interface Target extends AsyncDisposable {
  name: 'PGlite' | 'Postgres'
  broker: Broker
  /** Server version as the database reports it. */
  version: string
  /** Warnings and errors the broker logged, by message. */
  logged: Map<string, number>
  /** One multi-row INSERT, as the broker's rows would be stored (no transaction, no RETURNING). */
  rawInsert(rows: RawRow[]): Promise<void>
  /** Runs SQL directly on the database, outside the broker. */
  query(text: string): Promise<Record<string, unknown>[]>
  /** Empties session_events (and checkpoints on Postgres) so every run starts alike. */
  reset(): Promise<void>
  /** Server processes working for this benchmark (Postgres backends; none for PGlite). */
  backendPids(): Promise<number[]>
}

const insertText = (n: number) => {
  const values = Array.from({ length: n }, (_, r) => {
    const p = (c: number) => `$${r * 8 + c}`
    return `(${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}, ${p(6)}, ${p(7)}, ${p(8)})`
  })
  return `insert into session_events (${COLUMNS}) values ${values.join(', ')}`
}
const texts = new Map<number, string>()
const textFor = (n: number) => texts.get(n) ?? texts.set(n, insertText(n)).get(n)!

const params = (rows: RawRow[]) =>
  rows.flatMap((r) => [
    r.sessionId,
    r.payload.uuid,
    r.payload.type,
    'worker',
    1,
    r.payload,
    false,
    null,
  ])

async function brokerOn(
  srcDir: string,
  databaseUrl: string | null,
  dataDir: string,
  logged: Map<string, number>,
) {
  const { startBroker, loadConfig, createLogger } = await brokerModules(srcDir)
  const log = createLogger('warn', {}, (line) => {
    const { msg } = JSON.parse(line) as { msg: string }
    logged.set(msg, (logged.get(msg) ?? 0) + 1)
  })
  const config = loadConfig({
    CCBROKER_PORT: '0',
    CCBROKER_DATA_DIR: dataDir,
    ...(databaseUrl ? { CCBROKER_DATABASE_URL: databaseUrl, CCBROKER_JWT_SECRET: SECRET } : {}),
  })
  const broker = await startBroker(config, log)
  // Start-up warnings (no Claude Code binary, …) are not the event path's business.
  logged.clear()
  return broker
}

export async function pgliteTarget(srcDir = DEFAULT_SRC): Promise<Target> {
  const dataDir = await mkdtemp(join(tmpdir(), 'ccb-bench-'))
  const logged = new Map<string, number>()
  const broker = await brokerOn(srcDir, null, dataDir, logged).catch(async (err) => {
    await rm(dataDir, { recursive: true, force: true })
    throw err
  })
  // The broker's own PGlite instance: a data dir admits one process, and PGlite one client.
  const pg = (broker.database.db as unknown as { $client: PGlite }).$client
  const query = async (text: string) => (await pg.query<Record<string, unknown>>(text)).rows
  return {
    name: 'PGlite',
    broker,
    version: String((await query('show server_version'))[0]?.server_version),
    logged,
    rawInsert: async (rows) => void (await pg.query(textFor(rows.length), params(rows))),
    query,
    reset: async () => void (await pg.exec('truncate session_events')),
    backendPids: async () => [],
    async [Symbol.asyncDispose]() {
      await broker.stop()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}

/** Null when the server cannot be reached (the reason goes to `skip`). */
export async function postgresTarget(
  adminUrl: string,
  maxConnections: number,
  skip: (reason: string) => void,
  srcDir = DEFAULT_SRC,
): Promise<Target | null> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {}, connect_timeout: 5 })
  const name = `ccb_bench_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`
  try {
    await admin.unsafe(`create database ${name}`)
  } catch (err) {
    await admin.end({ timeout: 1 }).catch(() => {})
    skip(`Postgres at ${redact(adminUrl)} unavailable: ${(err as Error).message}`)
    return null
  }
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  const dataDir = await mkdtemp(join(tmpdir(), 'ccb-bench-'))
  const logged = new Map<string, number>()
  const raw = postgres(url.toString(), { max: maxConnections, onnotice: () => {} })
  const drop = async () => {
    await raw.end({ timeout: 5 })
    await admin.unsafe(`drop database if exists ${name} with (force)`)
    await admin.end({ timeout: 5 })
    await rm(dataDir, { recursive: true, force: true })
  }
  let broker: Broker
  try {
    broker = await brokerOn(srcDir, url.toString(), dataDir, logged)
  } catch (err) {
    await drop()
    throw err
  }
  const query = async (text: string) => [...(await raw.unsafe(text))] as Record<string, unknown>[]
  return {
    name: 'Postgres',
    broker,
    version: String((await query('show server_version'))[0]?.server_version),
    logged,
    rawInsert: async (rows) =>
      void (await raw.unsafe(textFor(rows.length), params(rows) as never[], { prepare: true })),
    query,
    reset: async () => void (await raw.unsafe('truncate session_events; checkpoint').simple()),
    backendPids: async () =>
      (await query('select pid from pg_stat_activity where datname = current_database()')).map(
        (r) => Number(r.pid),
      ),
    async [Symbol.asyncDispose]() {
      await broker.stop()
      await drop()
    },
  }
}

const redact = (u: string) => u.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@')

export interface BenchSession {
  id: string
  claudeSessionId: string
  token: string
  epoch: number
  /** POST /v1/sessions/:id/worker/events */
  eventsUrl: string
  /** GET /v1/sessions/:id/events/stream */
  streamUrl: string
}

/** A session with a bridged worker, through the broker's own API. */
export async function createBenchSession(brokerUrl: string): Promise<BenchSession> {
  const post = async (path: string, body?: unknown) => {
    const res = await fetch(brokerUrl + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    if (!res.ok) throw new Error(`POST ${path}: HTTP ${res.status} ${await res.text()}`)
    return (await res.json()) as Record<string, any>
  }
  const { session } = await post('/v1/sessions', { workspace_id: 'bench' })
  const bridge = await post(`/v1/sessions/${session.id}/bridge`)
  return {
    id: session.id,
    claudeSessionId: session.claude_session_id,
    token: bridge.worker_jwt,
    epoch: bridge.worker_epoch,
    eventsUrl: `${bridge.api_base_url}/worker/events`,
    streamUrl: `${brokerUrl}/v1/sessions/${session.id}/events/stream`,
  }
}
