import type { Db } from '../db/handle.ts'
import { updateTurn } from '../db/repos/turns.ts'
import type { SessionRow, TurnRow } from '../db/schema.ts'
import type { EventRow } from '../events/bus.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import type { Generations } from '../sessions/generations.ts'
import type { TurnSpec, WorkerDirs, WorkerRun, WorkerTransport } from '../worker/transport.ts'
import type { TurnDirectory } from './directory.ts'
import { failed, type Outcome } from './outcome.ts'
import type { IdleWorker } from './warm-pool.ts'
import { prepareWorkdirs } from './workdirs.ts'

/** A worker token outlives its turn's maximum duration by this much (stop, push, result). */
export const TOKEN_MARGIN_SECONDS = 300
/** A warm worker's token also covers its later turns for this long; then it is respawned. */
const WARM_TOKEN_SECONDS = 4 * 3600

/** What a worker process gets around its life (MCP server, workspace sync). */
export interface WorkerSetup {
  extraArgs?: string[]
  extraEnv?: Record<string, string>
  mcpServers?: Record<string, string>
  /** A turn of this process begins: its first, or a later one when the worker is kept warm. */
  beginTurn?(turn: TurnRow): void
  /**
   * The turn is over: its MCP context and permission requests end, and what it changed is
   * pushed. Answers whether the directories are still the workspace as stored.
   */
  endTurn?(turn: TurnRow, log: Logger): Promise<{ current: boolean }>
  /** Whether nobody changed the workspace since the last turn's push. */
  current?(): Promise<boolean>
  /** After a kept worker's process ended: pushes what it wrote since its last turn's push. */
  flush?(): Promise<void>
  /** The process is gone. */
  release?(): Promise<void>
}

/** Per-worker additions around the worker's life, and a hook for its events. */
export interface TurnHooks {
  /** Before the worker starts; what it answers goes into the worker's argv and env. */
  prepare?(ctx: {
    turn: TurnRow
    session: SessionRow
    dirs: WorkerDirs
    log: Logger
  }): Promise<WorkerSetup>
  /** A worker event of this turn other than its result (a can_use_tool request), or a broker
   *  `permission_resolved` event for it. */
  onWorkerEvent?(turn: TurnRow, run: WorkerRun, event: EventRow): Promise<void>
}

/** A live worker process and what it was set up with; it may outlive its turn (warm). */
export interface WarmWorker extends IdleWorker {
  readonly run: WorkerRun
  readonly setup: WorkerSetup
  /** What the process runs with: a later turn asking for else must tell it or respawn it. */
  model: string | null
  permissionMode: string | null
  readonly partial: boolean
  /** Started with --max-budget-usd: a process-wide limit, fixed when it started. */
  readonly budgeted: boolean
  readonly tokenExpiresAt: number
  gone: boolean
  /** The process's latest result, which its next result's usage is counted from. */
  lastResult: Record<string, unknown> | null
  /** A turn's push ran while the process was alive: what it wrote later is pushed at its end. */
  kept: boolean
  /** Lets the process end (stdin closed, end_session), signalling it when it does not. */
  stop(): Promise<void>
}

/**
 * Worker processes for turns: started with their directories, workspace and MCP server, handed a
 * session's next turn when kept warm, and stopped.
 */
export function createWorkerProcesses(deps: {
  db: Db
  /** Where turns' directories live. */
  runDir: string
  /** How long a worker has to exit after its stdin closes, and between SIGTERM and SIGKILL. */
  stopGraceMs: number
  transport: WorkerTransport
  directory: TurnDirectory
  generations: Generations
  metrics?: Pick<Metrics, 'spawnFailures'>
  hooks?: TurnHooks
  /** Workers may serve later turns of their session: their tokens last for those too. */
  warm: boolean
}) {
  const { db } = deps

  const exitWithin = (run: WorkerRun, ms: number) =>
    Promise.race([run.exited.then(() => true), Bun.sleep(ms).then(() => false)])

  /** SIGTERM, then SIGKILL, a grace period apart, to the worker's process group. */
  async function terminate(run: WorkerRun) {
    run.signal('SIGTERM')
    if (await exitWithin(run, deps.stopGraceMs)) return
    run.signal('SIGKILL')
    await exitWithin(run, deps.stopGraceMs)
  }

  /** Starts a worker process for the turn: directories, workspace, MCP server, the process. */
  async function start(
    turn: TurnRow,
    session: SessionRow,
    userPayload: Record<string, unknown>,
    maxMs: number,
    maxBudgetUsd: number | null,
    log: Logger,
  ): Promise<WarmWorker | Outcome> {
    const { transport } = deps
    const work = await prepareWorkdirs(deps.runDir, session.id)
    let setup: WorkerSetup
    try {
      setup = (await deps.hooks?.prepare?.({ turn, session, dirs: work.dirs, log })) ?? {}
    } catch (err) {
      await work.cleanup().catch(() => {})
      return failed((err as Error).message)
    }
    let epoch: number | null = null
    // A warm worker's token must serve its later turns too; its generation ends with it.
    const ttl =
      Math.ceil(maxMs / 1000) + TOKEN_MARGIN_SECONDS + (deps.warm ? WARM_TOKEN_SECONDS : 0)
    const spec: TurnSpec = {
      turn,
      session,
      userPayload,
      dirs: work.dirs,
      extraArgs: [
        ...(setup.extraArgs ?? []),
        ...(maxBudgetUsd !== null ? ['--max-budget-usd', String(maxBudgetUsd)] : []),
      ],
      mcpServers: setup.mcpServers ?? {},
      extraEnv: setup.extraEnv ?? {},
      tokenTtlSeconds: ttl,
      onEpoch: async (e) => {
        epoch = e
        deps.directory.register(session.id, e, turn.id)
        await updateTurn(db, turn.id, { workerEpoch: e })
      },
      log,
    }
    const freeAll = async () => {
      // The worker is gone: its token must not open anything any more.
      if (epoch !== null)
        await deps.generations
          .close(session.id, epoch)
          .catch((err) => log.error('could not end the worker generation', { err }))
      for (const release of [setup.release, work.cleanup])
        await release?.().catch((err) => log.error('worker cleanup failed', { err }))
    }
    let run: WorkerRun
    try {
      run = await transport.start(spec)
    } catch (err) {
      deps.metrics?.spawnFailures.inc()
      await freeAll()
      return failed(`worker could not start: ${(err as Error).message}`)
    }
    let retiring: Promise<void> | null = null
    const meta = turn.metadata
    const live: WarmWorker = {
      sessionId: session.id,
      epoch: run.epoch,
      run,
      setup,
      exited: run.exited,
      model: typeof meta.model === 'string' ? meta.model : null,
      permissionMode: typeof meta.permission_mode === 'string' ? meta.permission_mode : null,
      partial: meta.partial_messages !== false,
      budgeted: maxBudgetUsd !== null,
      tokenExpiresAt: Date.now() + ttl * 1000,
      gone: false,
      kept: false,
      lastResult: null,
      async stop() {
        if (live.gone) return
        await run.finish().catch(() => {})
        if (!(await exitWithin(run, deps.stopGraceMs))) await terminate(run)
      },
      retire: () =>
        (retiring ??= (async () => {
          await live.stop()
          if (live.kept)
            await setup.flush?.().catch((err) => log.error('workspace flush failed', { err }))
          await freeAll()
        })()),
    }
    void run.exited.then(() => {
      live.gone = true
    })
    await updateTurn(db, turn.id, { workerPid: run.pid })
    log.info('worker started', { pid: run.pid, epoch: run.epoch, transport: transport.name })
    return live
  }

  /**
   * Gives a warm worker its session's next turn, unless the process cannot serve it as a new
   * one would: it is gone, another generation took over, its token would not last, the
   * workspace changed under it, or the turn asks for what cannot be changed in a live process.
   */
  async function reuse(
    w: WarmWorker,
    turn: TurnRow,
    session: SessionRow,
    userPayload: Record<string, unknown>,
    maxMs: number,
    log: Logger,
  ): Promise<boolean> {
    if (w.gone || session.epoch !== w.epoch) return false
    if (w.tokenExpiresAt < Date.now() + maxMs + TOKEN_MARGIN_SECONDS * 1000) return false
    const meta = turn.metadata
    if ((meta.partial_messages !== false) !== w.partial) return false
    const model = typeof meta.model === 'string' ? meta.model : null
    const mode = typeof meta.permission_mode === 'string' ? meta.permission_mode : null
    // Over stdio Claude Code takes both by control request; back to "the default" it cannot.
    const controls: Record<string, unknown>[] = []
    const live = deps.transport.name === 'stdio'
    if (model !== w.model) {
      if (!live || model === null) return false
      controls.push({ subtype: 'set_model', model })
    }
    if (mode !== w.permissionMode) {
      if (!live || mode === null) return false
      controls.push({ subtype: 'set_permission_mode', mode })
    }
    if (!(await w.setup.current?.())) return false
    deps.directory.register(session.id, w.epoch, turn.id)
    await updateTurn(db, turn.id, { workerEpoch: w.epoch, workerPid: w.run.pid })
    await w.run.nextTurn({ turn, userPayload, controls, log })
    w.model = model
    w.permissionMode = mode
    log.info('warm worker reused', { pid: w.run.pid, epoch: w.epoch })
    return true
  }

  return { start, reuse, terminate }
}

export type WorkerProcesses = ReturnType<typeof createWorkerProcesses>
