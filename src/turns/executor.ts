import type { Db } from '../db/handle.ts'
import { findEventsByIds, listEventsSince } from '../db/repos/events.ts'
import { getSession } from '../db/repos/sessions.ts'
import { updateTurn } from '../db/repos/turns.ts'
import type { SessionRow, TurnRow } from '../db/schema.ts'
import type { Bus, EventRow } from '../events/bus.ts'
import type { EventLog } from '../events/log.ts'
import type { Logger } from '../log.ts'
import type { TurnSpec, WorkerDirs, WorkerRun, WorkerTransport } from '../worker/transport.ts'
import type { Metrics } from '../metrics.ts'
import type { Generations } from '../sessions/generations.ts'
import type { TurnDirectory } from './directory.ts'
import {
  cancelled,
  failed,
  finishTurn,
  outcomeOfResult,
  resultSummary,
  type Outcome,
} from './outcome.ts'
import { whileUnavailable } from '../db/unavailable.ts'
import { prepareWorkdirs } from './workdirs.ts'
import { BudgetExhaustedError } from '../errors.ts'
import type { Budgets } from '../usage/budgets.ts'

/** A worker token outlives its turn's maximum duration by this much (stop, push, result). */
const TOKEN_MARGIN_SECONDS = 300

export type StopReason = 'cancel' | 'lease-lost' | 'shutdown'

/** How the runner reaches a running turn: `stopped` resolves when it must stop, and why. */
export interface TurnControl {
  stopped: Promise<StopReason>
  /** The reason once `stopped` has resolved, else null. */
  reason(): StopReason | null
}

/** Per-turn additions (MCP server, workspace sync) around the worker's life. */
export interface TurnHooks {
  /** Before the worker starts; what it answers goes into the worker's argv and env. */
  prepare?(ctx: { turn: TurnRow; session: SessionRow; dirs: WorkerDirs; log: Logger }): Promise<{
    extraArgs?: string[]
    extraEnv?: Record<string, string>
    mcpServers?: Record<string, string>
    release?(): Promise<void>
  }>
  /** A worker event of this turn other than its result (a can_use_tool request), or a broker
   *  `permission_resolved` event for it. */
  onWorkerEvent?(turn: TurnRow, run: WorkerRun, event: EventRow): Promise<void>
}

/** Runs one claimed turn end to end: prepare → worker → wait for its result → stop → finish. */
export function createTurnExecutor(deps: {
  db: Db
  /** Where turns' directories live. */
  runDir: string
  /** A turn's longest run unless its metadata says otherwise. */
  turnMaxMs: number
  /** The pause between the steps of stopping a worker (interrupt, end, SIGTERM, SIGKILL). */
  stopGraceMs: number
  /** A running turn's lease: how long its end may wait for an away database. */
  leaseMs: number
  events: EventLog
  bus: Bus
  transport: WorkerTransport | null
  /** Why there is no transport, for the turn's error. */
  unavailable?: string
  directory: TurnDirectory
  generations: Generations
  owner: string
  metrics?: Pick<Metrics, 'queueWait' | 'turnDuration' | 'spawnFailures'>
  log: Logger
  hooks?: TurnHooks
  /** Spend limits: checked before a worker starts, and every result counted. */
  budgets?: Budgets
}) {
  const { db } = deps

  const brokerEvent = (turn: TurnRow, payload: Record<string, unknown>) =>
    deps.events.append(turn.sessionId, [{ payload: { ...payload, turn_id: turn.id } }], {
      source: 'broker',
      turnId: turn.id,
    })

  const exitWithin = (run: WorkerRun, ms: number) =>
    Promise.race([run.exited.then(() => true), Bun.sleep(ms).then(() => false)])

  /** interrupt → end → SIGTERM → SIGKILL, a grace period between each. */
  async function stopWorker(run: WorkerRun, gentle: boolean) {
    const grace = deps.stopGraceMs
    if (gentle) {
      await run.interrupt().catch(() => {})
      if (await exitWithin(run, grace)) return
      await run.finish().catch(() => {})
      if (await exitWithin(run, grace)) return
    }
    run.signal('SIGTERM')
    if (await exitWithin(run, grace)) return
    run.signal('SIGKILL')
    await exitWithin(run, grace)
  }

  /** The turn's last stored result, counted (once) if it was not yet. */
  async function storedResult(turn: TurnRow): Promise<Record<string, unknown> | null> {
    let after = 0
    let found: EventRow | null = null
    for (;;) {
      const rows = await listEventsSince(db, turn.sessionId, after, 1000, { turnId: turn.id })
      for (const r of rows) if (r.source === 'worker' && r.eventType === 'result') found = r
      if (rows.length < 1000) {
        if (found) await deps.budgets?.record(turn, found)
        return found?.payload ?? null
      }
      after = rows.at(-1)!.seq
    }
  }

  async function runWorker(
    turn: TurnRow,
    session: SessionRow,
    userPayload: Record<string, unknown>,
    control: TurnControl,
    log: Logger,
  ): Promise<Outcome | null> {
    if (!deps.transport) return failed(deps.unavailable ?? 'no worker transport')
    // What is left of the session's and workspace's budgets (and the turn's own cap) is the
    // most Claude Code may spend; nothing left and the turn does not start.
    let maxBudgetUsd: number | null
    try {
      const cap = turn.metadata.max_budget_usd
      maxBudgetUsd =
        (await deps.budgets?.admit(session, turn.id, typeof cap === 'number' ? cap : undefined)) ??
        null
    } catch (err) {
      if (err instanceof BudgetExhaustedError) return failed(err.message)
      throw err
    }
    // Lossless: a worker may post more at once than a listener may lag behind; the executor
    // reads what its queue cannot hold from the log instead of being cut off.
    const watch = deps.bus.subscribe(
      turn.sessionId,
      (e) =>
        e.turnId === turn.id &&
        ((e.source === 'worker' && e.eventType !== 'stream_event') ||
          (e.source === 'broker' && e.eventType === 'permission_resolved')),
      { lossless: true },
    )
    const work = await prepareWorkdirs(deps.runDir, session.id)
    const releases: (() => Promise<void>)[] = [work.cleanup]
    let run: WorkerRun | null = null
    let epoch: number | null = null
    try {
      let extra: Awaited<ReturnType<NonNullable<TurnHooks['prepare']>>>
      try {
        extra = (await deps.hooks?.prepare?.({ turn, session, dirs: work.dirs, log })) ?? {}
      } catch (err) {
        return failed((err as Error).message)
      }
      if (extra.release) releases.unshift(extra.release)
      const maxMs = Number(turn.metadata.max_duration_ms ?? deps.turnMaxMs)
      const spec: TurnSpec = {
        turn,
        session,
        userPayload,
        dirs: work.dirs,
        extraArgs: [
          ...(extra.extraArgs ?? []),
          ...(maxBudgetUsd !== null ? ['--max-budget-usd', String(maxBudgetUsd)] : []),
        ],
        mcpServers: extra.mcpServers ?? {},
        extraEnv: extra.extraEnv ?? {},
        tokenTtlSeconds: Math.ceil(maxMs / 1000) + TOKEN_MARGIN_SECONDS,
        onEpoch: async (e) => {
          epoch = e
          deps.directory.register(session.id, e, turn.id)
          await updateTurn(db, turn.id, { workerEpoch: e })
        },
        log,
      }
      try {
        run = await deps.transport.start(spec)
      } catch (err) {
        deps.metrics?.spawnFailures.inc()
        return failed(`worker could not start: ${(err as Error).message}`)
      }
      const r = run
      await updateTurn(db, turn.id, { workerPid: r.pid })
      log.info('worker started', { pid: r.pid, epoch: r.epoch, transport: deps.transport.name })

      const ac = new AbortController()
      const never = new Promise<never>(() => {})
      // Timers cleared when the turn ends: a pending Bun.sleep would hold the turn for maxMs.
      const timers: Timer[] = []
      const after = <K extends string>(ms: number, kind: K) =>
        new Promise<{ kind: K }>(
          (resolve) => void timers.push(setTimeout(() => resolve({ kind }), ms)),
        )
      const exit = r.exited.then((code) => ({ kind: 'exit' as const, code }))
      // Each of these answers once; once handled it is replaced by `never`.
      let timeout: Promise<{ kind: 'timeout' }> = after(maxMs, 'timeout')
      let stop: Promise<{ kind: 'stop'; reason: StopReason }> = control.stopped.then((reason) => ({
        kind: 'stop' as const,
        reason,
      }))
      // After an interrupt (a cancel, the time limit): the worker acknowledges it with its
      // result, and the turn ends then; one that does not answer by the deadline is signalled.
      const end: { why: 'cancel' | 'timeout' | null } = { why: null }
      let deadline: Promise<{ kind: 'deadline' }> = never
      const interrupt = async (why: 'cancel' | 'timeout') => {
        end.why = why
        deadline = after(deps.stopGraceMs, 'deadline')
        await r.interrupt().catch(() => {})
      }
      const timedOut = () => failed(`turn exceeded its maximum duration of ${maxMs} ms`)
      // Once the subscription is closed (the broker is stopping) only the other waits remain:
      // asking it again would answer at once, for ever.
      let watching = true
      const nextEvent = () =>
        watching
          ? watch.next(ac.signal, 3_600_000).then((e) => ({ kind: 'event' as const, e }))
          : never
      try {
        for (;;) {
          const next = await Promise.race([nextEvent(), exit, timeout, stop, deadline])
          if (next.kind === 'event') {
            const e = next.e
            if (e === null) watching = false
            if (e === null || e === 'idle') continue
            // A message cancelled before it started (interrupt with cancel_queued): no result
            // will come.
            if (
              end.why !== null &&
              e.eventType === 'command_lifecycle' &&
              e.payload.state === 'cancelled'
            ) {
              await r.finish()
              if (!(await exitWithin(r, deps.stopGraceMs))) await stopWorker(r, false)
              return end.why === 'timeout' ? timedOut() : cancelled('cancelled', null)
            }
            if (e.eventType === 'result') {
              // Spent as soon as it is stored: the next turn's budget check sees it.
              await deps.budgets?.record(turn, e)
              await r.finish()
              if (!(await exitWithin(r, deps.stopGraceMs))) await stopWorker(r, false)
              if (end.why === 'timeout') return timedOut()
              return outcomeOfResult(e.payload, end.why === 'cancel')
            }
            await deps.hooks?.onWorkerEvent?.(turn, r, e)
            continue
          }
          if (next.kind === 'exit') {
            if (end.why === 'timeout') return timedOut()
            const result = await storedResult(turn)
            if (result) return outcomeOfResult(result, end.why === 'cancel')
            if (end.why === 'cancel') return cancelled('cancelled', null)
            const tail = r.stderrTail()
            return failed(
              `worker exited with code ${next.code} before its result${tail ? `: ${tail}` : ''}`,
            )
          }
          if (next.kind === 'deadline') {
            log.warn('the worker did not answer the interrupt; stopping it', { ending: end.why })
            await r.finish().catch(() => {})
            if (!(await exitWithin(r, deps.stopGraceMs))) await stopWorker(r, false)
            if (end.why === 'timeout') return timedOut()
            const result = await storedResult(turn)
            return cancelled('cancelled', result ? resultSummary(result) : null)
          }
          if (next.kind === 'timeout') {
            timeout = never
            log.warn('turn exceeded its maximum duration; interrupting the worker', { maxMs })
            await interrupt('timeout')
            continue
          }
          stop = never
          if (next.reason === 'lease-lost') {
            r.signal('SIGKILL')
            return null
          }
          if (next.reason === 'shutdown') {
            await stopWorker(r, false)
            return null
          }
          if (end.why === null) await interrupt('cancel')
          else end.why = 'cancel'
        }
      } finally {
        ac.abort()
        for (const t of timers) clearTimeout(t)
      }
    } finally {
      watch.close()
      // The worker is gone: its token must not open anything any more.
      if (epoch !== null)
        await deps.generations
          .close(session.id, epoch)
          .catch((err) => log.error('could not end the worker generation', { err }))
      for (const release of releases)
        await release().catch((err) => log.error('turn cleanup failed', { err }))
    }
  }

  return {
    /** Records the outcome, unless the turn was handed back (shutdown) or taken (lease lost). */
    async execute(turn: TurnRow, control: TurnControl): Promise<void> {
      const log = deps.log.child({ sessionId: turn.sessionId, turnId: turn.id })
      const startedAt = turn.startedAt ?? new Date()
      deps.metrics?.queueWait.observe((startedAt.getTime() - turn.enqueuedAt.getTime()) / 1000)
      let outcome: Outcome | null
      try {
        const session = await getSession(db, turn.sessionId)
        const [userEvent] = await findEventsByIds(db, turn.sessionId, [turn.userEventId])
        if (!session || !userEvent) throw new Error('session or user message is missing')
        await brokerEvent(turn, { type: 'turn_started', attempt: turn.attempts })
        outcome = await runWorker(turn, session, userEvent.payload, control, log)
      } catch (err) {
        log.error('turn failed in the broker', { err })
        outcome = failed(`broker error: ${(err as Error).message}`)
      }
      if (outcome === null) return
      // An outcome is not given up for a database outage shorter than the turn's lease.
      const o = outcome
      const row = await whileUnavailable(
        () => finishTurn(deps.events, turn, o, { state: 'running', owner: deps.owner }),
        { deadlineMs: deps.leaseMs },
      )
      if (!row) return log.warn('turn finished elsewhere; result not recorded')
      const seconds = (Date.now() - startedAt.getTime()) / 1000
      deps.metrics?.turnDuration.observe({ state: o.state }, seconds)
      log.info('turn finished', { state: o.state, error: o.error, seconds })
    },
  }
}

export type TurnExecutor = ReturnType<typeof createTurnExecutor>
