import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBroker, type Broker } from '../broker.ts'
import { createClient, type BrokerClient } from '../client/client.ts'
import { loadConfig, type Config } from '../config.ts'
import { createLogger, type Logger, type LogLevel } from '../log.ts'
import { writeScriptedClaude } from './scripted-worker.ts'
import {
  startWorkerControl,
  type ControlAnswer,
  type ControlTurn,
  type HeldTurn,
  type WorkerControl,
} from './worker-control.ts'

/** What a scripted turn knows when it decides its answer. */
export interface ScriptedTurn {
  /** The broker's session and turn ids. */
  sessionId: string
  turnId: string
  /** How many user messages this conversation had before this one. */
  history: number
  /** Aborts when the turn is cancelled (or its worker dies) while the answer is awaited. */
  signal: AbortSignal
}

/** A reply text, or a script: steps (tool calls, MCP calls, permission requests, partial text), then a reply, a failure or an exit. */
export type ScriptedAnswer = string | ControlAnswer

export interface ScriptedWorker {
  /**
   * The answer to each turn: a fixed one, or a function of the user message's text. A function
   * may take as long as it likes (the turn "hangs" until it answers, and a cancel ends it).
   * Default: `echo: <message>`.
   */
  reply?:
    | ScriptedAnswer
    | ((message: string, turn: ScriptedTurn) => ScriptedAnswer | Promise<ScriptedAnswer>)
}

export interface RealWorker {
  /** A Claude Code executable (e.g. `node_modules/.bin/claude`). */
  claude: string
  /** Its environment besides PATH and HOME: e.g. `ANTHROPIC_BASE_URL` of startFakeAnthropic. */
  env?: Record<string, string>
}

export interface TestBrokerOptions {
  /**
   * Who runs the turns: the scripted worker (the default), real Claude Code, or `false` for
   * none (your own workers bridge in; CCBROKER_CLAUDE_BIN in `config` still counts).
   */
  worker?: ScriptedWorker | RealWorker | false
  /** `stdio` (default) or `ccr` (Claude Code 2.1.120 and older). */
  transport?: 'stdio' | 'ccr'
  /** CCBROKER_* settings, as the broker's environment would give them. */
  config?: Record<string, string>
  /** A PostgreSQL database to use (it is migrated, not dropped); default: PGlite in a temp dir. */
  databaseUrl?: string
  /**
   * A logger, or the level of one on stderr. Default: CCBROKER_LOG_LEVEL when `config` sets it,
   * else CCBROKER_TEST_LOG_LEVEL from the environment, else `silent`.
   */
  log?: Logger | LogLevel
}

export interface TestBroker extends AsyncDisposable {
  url: string
  /** A client of this broker (with its API key when `config` sets CCBROKER_API_KEYS). */
  client: BrokerClient
  broker: Broker
  config: Readonly<Config>
  dataDir: string
  /**
   * The scripted worker's turns: each it ran, `hold(sessionId)` to keep the next one waiting at
   * its start, and `pause(sessionId)` to catch its next `{ hold: true }` step mid-turn.
   */
  worker: {
    turns: ControlTurn[]
    hold(sessionId: string): HeldTurn
    pause(sessionId: string): HeldTurn
  } | null
  stop(): Promise<void>
}

const isReal = (w: TestBrokerOptions['worker']): w is RealWorker =>
  typeof (w as RealWorker | undefined)?.claude === 'string'

/**
 * A real broker for an integration test: on 127.0.0.1, port 0, with its data in a temp dir
 * (PGlite unless `databaseUrl`), and a worker that needs no Claude Code and no network unless
 * you ask for the real one. Disposing stops it and removes what it made.
 */
export async function startTestBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  const dir = await mkdtemp(join(tmpdir(), 'cc-broker-test-'))
  let control: WorkerControl | null = null
  const cleanUp = async () => {
    await control?.stop()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const worker = options.worker ?? {}
    let client: BrokerClient | null = null
    let workerSettings: Record<string, string> = {}
    if (worker === false) {
      // No worker of ours.
    } else if (isReal(worker)) {
      workerSettings = {
        CCBROKER_CLAUDE_BIN: worker.claude,
        CCBROKER_WORKER_ENV: JSON.stringify(worker.env ?? {}),
      }
    } else {
      const reply = worker.reply
      // A warm worker serves several turns of its session: the one it serves is the running one.
      const runningTurn = async (sessionId: string) =>
        (await client?.listTurns(sessionId, { limit: 100 }))?.data.find(
          (t) => t.state === 'running',
        )?.id
      control = await startWorkerControl(async (turn, signal) => {
        const answer =
          typeof reply === 'function'
            ? await reply(turn.text, {
                sessionId: turn.session_id ?? '',
                turnId: (await runningTurn(turn.session_id ?? '')) ?? turn.turn_id ?? '',
                history: turn.history,
                signal,
              })
            : reply
        return typeof answer === 'string' ? { reply: answer } : (answer ?? {})
      })
      workerSettings = {
        CCBROKER_CLAUDE_BIN: await writeScriptedClaude(dir),
        CCBROKER_WORKER_ENV: JSON.stringify({
          // Every turn asks the control server above what to do.
          FAKE_CLAUDE_CONTROL_URL: control.url,
          FAKE_CLAUDE_SCENARIO: 'control',
        }),
      }
    }
    const dataDir = join(dir, 'data')
    const config = loadConfig({
      PATH: process.env.PATH,
      CCBROKER_HOST: '127.0.0.1',
      CCBROKER_PORT: '0',
      CCBROKER_DATA_DIR: dataDir,
      CCBROKER_WORKER_TRANSPORT: options.transport ?? 'stdio',
      // Postgres asks for a shared secret (replicas sign each other's worker tokens).
      ...(options.databaseUrl
        ? {
            CCBROKER_DATABASE_URL: options.databaseUrl,
            CCBROKER_JWT_SECRET: crypto.getRandomValues(Buffer.alloc(32)).toString('hex'),
          }
        : {}),
      ...workerSettings,
      ...options.config,
    })
    const log =
      typeof options.log === 'object'
        ? options.log
        : createLogger(
            options.log ??
              (options.config?.CCBROKER_LOG_LEVEL
                ? config.logLevel
                : ((process.env.CCBROKER_TEST_LOG_LEVEL as LogLevel | undefined) ?? 'silent')),
          )
    const broker = await startBroker(config, log)
    let stopped: Promise<void> | null = null
    const stop = () =>
      (stopped ??= (async () => {
        await broker.stop()
        await cleanUp()
      })())
    const held = control
    client = createClient({ url: broker.url, apiKey: config.apiKeys[0] })
    return {
      url: broker.url,
      client,
      broker,
      config,
      dataDir,
      worker: held ? { turns: held.turns, hold: held.hold, pause: held.pause } : null,
      stop,
      [Symbol.asyncDispose]: stop,
    }
  } catch (err) {
    await cleanUp()
    throw err
  }
}
