import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { createLogger, type LogFields, type Logger } from '../../src/log.ts'
import { startBroker } from '../../src/broker.ts'
import { loadConfig } from '../../src/config.ts'
import { startTestBroker, TEST_SECRET, type TestBroker } from './broker.ts'
import type { DatabaseKind } from './databases.ts'
import { openSse, type SseFrame } from './sse.ts'
import { tempDir } from './temp-dir.ts'
import { until } from './until.ts'
import { writeScriptedClaude } from '../../src/testing/scripted-worker.ts'
import { startWorkerControl, type WorkerControl } from '../../src/testing/worker-control.ts'

export type Transport = 'stdio' | 'ccr'
export const TRANSPORTS: Transport[] = ['stdio', 'ccr']

/**
 * Writes `<dir>/claude`: the fake CLI, whose scenario a turn can pick with its model,
 * `metadata.model: 'fake:<scenario>[:<delay ms>]'` (the broker passes it as `--model`). Turns of
 * one broker can then take different paths without a broker (and a PGlite start) per scenario.
 * Otherwise the scenario comes from FAKE_CLAUDE_SCENARIO, as with `fakeClaudeBin`.
 */
export function scenarioClaudeBin(dir: string): Promise<string> {
  return writeScriptedClaude(dir, [
    'prev=',
    'for a in "$@"; do',
    '  if [ "$prev" = "--model" ]; then',
    '    case "$a" in fake:*)',
    '      s="${a#fake:}"; export FAKE_CLAUDE_SCENARIO="${s%%:*}"',
    '      case "$s" in *:*) export FAKE_CLAUDE_DELAY_MS="${s#*:}";; esac;;',
    '    esac',
    '  fi',
    '  prev="$a"',
    'done',
  ])
}

/** The metadata that makes a turn run `scenario` (see scenarioClaudeBin). */
export const scenario = (name: string, delayMs?: number) => ({
  model: delayMs === undefined ? `fake:${name}` : `fake:${name}:${delayMs}`,
})

/** What the fake recorded about one worker process (FAKE_CLAUDE_RECORD_DIR). */
export interface WorkerRecord {
  argv: string[]
  cwd: string
  env: Record<string, string>
  pid: number
  transport: string
  grandchild_pid?: number
  /** When the record was written (its file's mtime), to order a session's workers. */
  writtenMs: number
}

export interface TurnBroker extends TestBroker {
  /** The fake's record directory. */
  recordDir: string
  /** Where the fake asks what each turn does; `control.hold(sessionId)` holds the next one. */
  control: WorkerControl
  /** Records of the workers that ran in `sessionId`'s working directory, oldest first. */
  workers(sessionId: string): Promise<WorkerRecord[]>
  /** POST /api/v2/turns; answers the 202 body, failing on any other status. */
  enqueue(body: TurnInput): Promise<{ turn_id: string; session_id: string; events_url: string }>
  /** GET /api/turns/:id → the turn. */
  turn(id: string): Promise<Record<string, any>>
  /** Waits until the turn's state is one of `states`; answers the turn. */
  waitState(id: string, states: string[], deadlineMs?: number): Promise<Record<string, any>>
  /** Waits until the turn's log holds an event of `eventType`; answers it. */
  waitEvent(sessionId: string, turnId: string, eventType: string): Promise<Record<string, any>>
  /** Every frame of GET /api/turns/:id/events until the stream closes. */
  follow(id: string, headers?: Record<string, string>, query?: string): Promise<SseFrame[]>
}

export interface TurnInput {
  session_id: string
  workspace_id: string
  user_message: unknown
  metadata?: Record<string, unknown>
  [k: string]: unknown
}

/**
 * A real broker whose workers are the fake CLI (scenarioClaudeBin) on `transport`, recording
 * each worker's argv, cwd and environment. Disposing stops the broker and removes the fake.
 */
export async function startTurnBroker(opts: {
  db: DatabaseKind
  transport: Transport
  env?: Record<string, string>
  /** More environment for the fake workers (CCBROKER_WORKER_ENV), besides the record dir. */
  workerEnv?: Record<string, string>
  log?: Logger
  /** Another test broker's Postgres database, to run as a second replica of it. */
  databaseUrl?: string
}): Promise<TurnBroker> {
  const dir = await tempDir('ccb-fake-')
  const recordDir = join(dir.path, 'records')
  await Bun.write(join(recordDir, '.keep'), '')
  const control = await startWorkerControl()
  let b: TestBroker
  try {
    b = await startTestBroker({
      db: opts.db,
      env: {
        CCBROKER_CLAUDE_BIN: await scenarioClaudeBin(dir.path),
        CCBROKER_WORKER_TRANSPORT: opts.transport,
        CCBROKER_STOP_GRACE_MS: '300',
        CCBROKER_WORKER_ENV: JSON.stringify({
          FAKE_CLAUDE_RECORD_DIR: recordDir,
          FAKE_CLAUDE_CONTROL_URL: control.url,
          ...opts.workerEnv,
        }),
        ...opts.env,
      },
      log: opts.log,
      databaseUrl: opts.databaseUrl,
    })
  } catch (err) {
    await control.stop()
    await dir[Symbol.asyncDispose]()
    throw err
  }
  // Once, however often it is called (a test may stop a broker before its disposal).
  let stopped: Promise<void> | null = null
  const stop = () =>
    (stopped ??= (async () => {
      await b.stop()
      await control.stop()
      await dir[Symbol.asyncDispose]()
    })())
  const tb: TurnBroker = {
    ...b,
    recordDir,
    control,
    workers: (sessionId) => readWorkerRecords(recordDir, sessionId),
    async enqueue(body) {
      const res = await b.api('POST', '/api/v2/turns', body)
      if (res.status !== 202) throw new Error(`enqueue → ${res.status} ${JSON.stringify(res.body)}`)
      return res.body
    },
    async turn(id) {
      const res = await b.api('GET', `/api/turns/${id}`)
      if (res.status !== 200)
        throw new Error(`GET turn → ${res.status} ${JSON.stringify(res.body)}`)
      return res.body.turn
    },
    async waitState(id, states, deadlineMs = 30_000) {
      return until(
        async () => {
          const t = await tb.turn(id)
          return states.includes(t.state) ? t : null
        },
        { deadlineMs, what: `turn ${id} to be ${states.join(' or ')}` },
      )
    },
    waitEvent: (sessionId, turnId, eventType) =>
      until(
        async () => {
          const res = await b.api('GET', `/v1/sessions/${sessionId}/events?limit=1000`)
          return (res.body.data as Record<string, any>[]).find(
            (e) => e.turn_id === turnId && e.event_type === eventType,
          )
        },
        { what: `a ${eventType} event of turn ${turnId}` },
      ),
    async follow(id, headers = {}, query = '') {
      await using sse = await openSse(`${b.url}/api/turns/${id}/events${query}`, headers)
      return await readAll(sse)
    },
    stop,
    [Symbol.asyncDispose]: stop,
  }
  return tb
}

/** POST /api/turns as a stream (`openSse` with a POST). `close()` hangs up, as a client would. */
export const postTurn = (url: string, body: unknown) =>
  openSse(
    `${url}/api/turns`,
    { 'content-type': 'application/json' },
    { method: 'POST', body: JSON.stringify(body) },
  )

/** Reads frames until the stream ends. */
export async function readAll(sse: { next(): Promise<SseFrame | null> }): Promise<SseFrame[]> {
  const frames: SseFrame[] = []
  for (let f = await sse.next(); f; f = await sse.next()) frames.push(f)
  return frames
}

export async function readWorkerRecords(recordDir: string, sessionId?: string) {
  const out: WorkerRecord[] = []
  for (const name of await readdir(recordDir)) {
    if (!name.endsWith('.json')) continue
    const path = join(recordDir, name)
    const record = JSON.parse(await readFile(path, 'utf8')) as WorkerRecord
    if (sessionId !== undefined && !record.cwd.endsWith(`/${sessionId}/project`)) continue
    out.push({ ...record, writtenMs: (await stat(path)).mtimeMs })
  }
  return out.sort((a, b) => a.writtenMs - b.writtenMs)
}

/** The worker of `sessionId`'s `n`th turn (0-based), once the fake has recorded it. */
export const workerOf = (b: TurnBroker, sessionId: string, n = 0) =>
  until(async () => (await b.workers(sessionId))[n], { what: `worker ${n} of ${sessionId}` })

/** Whether a process exists and is not a zombie. */
export async function isRunning(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null)
  return stat !== null && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
}

/**
 * The event types of a turn's frames, for comparing sequences. Workspace sync's own events
 * (`workspace_pulled`, `workspace_pushed`, …) around the worker and the partial messages of live
 * streams (`stream_event`, ephemeral) are left out: they belong to those parts' tests.
 */
export const types = (frames: SseFrame[]) =>
  frames
    .filter((f) => f.data.ephemeral !== true)
    .map((f) => f.data.event_type as string)
    .filter((t) => !t.startsWith('workspace_'))

/** A session id unique to this run. */
export const newSessionId = (prefix = 's') => `${prefix}-${crypto.randomUUID().slice(0, 8)}`

/** A logger that keeps every record (at debug), for tests that read what the broker logged. */
export function captureLog() {
  const records: LogFields[] = []
  const log = createLogger('debug', {}, (line) => void records.push(JSON.parse(line)))
  return { records, log }
}

/**
 * A second replica of `a`: the same database, JWT secret, fake worker (recording into the same
 * directory) and workspace store (a stdio session's transcript lives there), its own data dir.
 * Stopping it removes its data dir.
 */
export async function startReplica(
  a: TurnBroker,
  transport: Transport,
  env: Record<string, string> = {},
) {
  const dataDir = await tempDir()
  const broker = await startBroker(
    loadConfig({
      CCBROKER_PORT: '0',
      CCBROKER_DATA_DIR: dataDir.path,
      CCBROKER_LOG_LEVEL: 'silent',
      CCBROKER_DATABASE_URL: a.config.databaseUrl!,
      CCBROKER_JWT_SECRET: TEST_SECRET,
      CCBROKER_CLAUDE_BIN: a.config.claudeBin!,
      CCBROKER_WORKER_TRANSPORT: transport,
      CCBROKER_STOP_GRACE_MS: '300',
      CCBROKER_WORKER_ENV: JSON.stringify({ FAKE_CLAUDE_RECORD_DIR: a.recordDir }),
      CCBROKER_WORKSPACE_DIR: a.config.workspaceDir,
      ...env,
    }),
  )
  return {
    url: broker.url,
    async stop() {
      await broker.stop()
      await dataDir[Symbol.asyncDispose]()
    },
  }
}
