import type { SessionRow, TurnRow } from '../db/schema.ts'
import type { Logger } from '../log.ts'

/** Directories one worker process runs in. */
export interface WorkerDirs {
  /** The working directory; the same path on every turn of a session (transcripts key on it). */
  cwd: string
  /** A fresh HOME for this turn. */
  home: string
  /** CLAUDE_CONFIG_DIR. */
  configDir: string
}

export interface TurnSpec {
  turn: TurnRow
  session: SessionRow
  /** The turn's user message as stored in the log (a `user` payload of PROTOCOL.md §4, with `uuid`). */
  userPayload: Record<string, unknown>
  dirs: WorkerDirs
  /** Extra argv (tool rules, permission prompts). */
  extraArgs: string[]
  /** HTTP MCP servers for the worker (name → url); each gets the worker's token as Bearer. */
  mcpServers: Record<string, string>
  /** Extra environment for this worker. */
  extraEnv: Record<string, string>
  /** Lifetime of the worker's token: as long as the turn may run, and a margin. */
  tokenTtlSeconds: number
  /** Called with the worker's epoch before the process starts, so its events are tagged. */
  onEpoch(epoch: number): Promise<void>
  log: Logger
}

/** What a live worker is told when it takes the next turn of its session (a warm worker). */
export interface NextTurn {
  turn: TurnRow
  /** The turn's user message as stored in the log. */
  userPayload: Record<string, unknown>
  /** Control requests to send before the message (`set_model`, `set_permission_mode`). */
  controls: Record<string, unknown>[]
  log: Logger
}

/** A started worker process: it serves one turn, or several in a row when kept warm. */
export interface WorkerRun {
  readonly pid: number
  readonly epoch: number
  /** Resolves with the exit code once the process (not just its pipes) is gone. */
  readonly exited: Promise<number>
  /** The last lines the worker wrote on stderr, for error messages. */
  stderrTail(): string
  /** Asks the worker to abort its turn (`interrupt` control request). */
  interrupt(): Promise<void>
  /** After the turn's `result`: lets the worker exit by itself (end_session / stdin EOF). */
  finish(): Promise<void>
  /**
   * Hands the live process its session's next turn: what it writes from now on belongs to that
   * turn, and the turn's user message is sent to it.
   */
  nextTurn(next: NextTurn): Promise<void>
  /** Sends a client payload to the worker (e.g. a control_response to can_use_tool). */
  send(payload: Record<string, unknown>): Promise<void>
  /** Signals the worker's whole process group. */
  signal(sig: 'SIGTERM' | 'SIGKILL'): void
}

/**
 * How the broker starts Claude Code for a turn. Both transports put the same events in the same
 * log; the executor cannot tell them apart.
 */
export interface WorkerTransport {
  readonly name: 'ccr' | 'stdio'
  start(spec: TurnSpec): Promise<WorkerRun>
}
