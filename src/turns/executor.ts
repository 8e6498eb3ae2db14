import type { Db } from '../db/handle.ts'
import { findEventsByIds, listEventsSince } from '../db/repos/events.ts'
import { getSession } from '../db/repos/sessions.ts'
import type { SessionRow, TurnRow } from '../db/schema.ts'
import type { Bus, EventRow } from '../events/bus.ts'
import type { EventLog } from '../events/log.ts'
import type { Logger } from '../log.ts'
import type { WorkerTransport } from '../worker/transport.ts'
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
import type { WarmPool } from './warm-pool.ts'
import { createWorkerProcesses, type TurnHooks, type WarmWorker } from './worker-processes.ts'
import { BudgetExhaustedError } from '../errors.ts'
import type { Budgets } from '../usage/budgets.ts'

export type StopReason = 'cancel' | 'lease-lost' | 'shutdown'

/** How the runner reaches a running turn: `stopped` resolves when it must stop, and why. */
export interface TurnControl {
  stopped: Promise<StopReason>
  /** The reason once `stopped` has resolved, else null. */
  reason(): StopReason | null
}

/** Runs one claimed turn end to end: a worker (new or warm) → its result → push → keep or stop → finish. */
export function createTurnExecutor(deps: {
  db: Db
  /** Where turns' directories live. */
  runDir: string
  /** A turn's longest run unless its metadata says otherwise. */
  turnMaxMs: number
  /** How long a worker has to answer an interrupt, and the pause between its stop's steps. */
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
  /** Where workers wait for their session's next turn; without one a process serves one turn. */
  pool?: WarmPool<WarmWorker>
  /** Spend limits: checked before a worker starts, and every result counted. */
  budgets?: Budgets
}) {
  const { db } = deps
  const pool = deps.pool?.enabled ? deps.pool : undefined
  const processes = deps.transport
    ? createWorkerProcesses({ ...deps, transport: deps.transport, warm: pool !== undefined })
    : null

  const brokerEvent = (turn: TurnRow, payload: Record<string, unknown>) =>
    deps.events.append(turn.sessionId, [{ payload: { ...payload, turn_id: turn.id } }], {
      source: 'broker',
      turnId: turn.id,
    })

  /** The turn's last stored result, counted (once) if it was not yet. */
  async function storedResult(
    turn: TurnRow,
    previous: Record<string, unknown> | null = null,
  ): Promise<Record<string, unknown> | null> {
    let after = 0
    let found: EventRow | null = null
    for (;;) {
      const rows = await listEventsSince(db, turn.sessionId, after, 1000, { turnId: turn.id })
      for (const r of rows) if (r.source === 'worker' && r.eventType === 'result') found = r
      if (rows.length < 1000) {
        if (found) await deps.budgets?.record(turn, found, previous)
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
    if (!processes) return failed(deps.unavailable ?? 'no worker transport')
    const maxMs = Number(turn.metadata.max_duration_ms ?? deps.turnMaxMs)
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
    let worker: WarmWorker | null = null
    // Whether the process answered the turn's end itself and may serve the next one.
    let survived = false
    try {
      await pool?.settled(session.id)
      const warm = pool?.take(session.id) ?? null
      let reused = false
      if (warm) {
        // --max-budget-usd is fixed when a process starts: a turn under a budget gets a new one
        // with what is left now.
        reused =
          maxBudgetUsd === null &&
          !warm.budgeted &&
          (await processes.reuse(warm, turn, session, userPayload, maxMs, log).catch((err) => {
            log.warn('could not hand the turn to the warm worker', { err })
            return false
          }))
        if (reused) worker = warm
        else await warm.retire('not reusable for this turn')
      }
      // A warm worker that dies before it took up the turn is replaced, once.
      attempts: for (;;) {
        if (!worker) {
          const started = await processes.start(
            turn,
            session,
            userPayload,
            maxMs,
            maxBudgetUsd,
            log,
          )
          if (!('run' in started)) return started
          worker = started
        }
        worker.setup.beginTurn?.(turn)
        const r = worker.run
        let began = false

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
        let stop: Promise<{ kind: 'stop'; reason: StopReason }> = control.stopped.then(
          (reason) => ({
            kind: 'stop' as const,
            reason,
          }),
        )
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
              began = true
              // A message cancelled before it started (interrupt with cancel_queued): no result
              // will come.
              if (
                end.why !== null &&
                e.eventType === 'command_lifecycle' &&
                e.payload.state === 'cancelled'
              ) {
                survived = true
                return end.why === 'timeout' ? timedOut() : cancelled('cancelled', null)
              }
              if (e.eventType === 'result') {
                // Spent as soon as it is stored: the next turn's budget check sees it.
                const previous = worker.lastResult
                await deps.budgets?.record(turn, e, previous)
                worker.lastResult = e.payload
                survived = true
                if (end.why === 'timeout') return timedOut()
                return outcomeOfResult(e.payload, end.why === 'cancel', previous)
              }
              await deps.hooks?.onWorkerEvent?.(turn, r, e)
              continue
            }
            if (next.kind === 'exit') {
              // The bus may not have brought this turn's first events yet: the log has them.
              if (reused && !began)
                began =
                  (
                    await listEventsSince(db, turn.sessionId, 0, 1, {
                      turnId: turn.id,
                      source: 'worker',
                    })
                  ).length > 0
              if (reused && !began && end.why === null) {
                log.warn('the warm worker died before it took up the turn; starting another')
                const dead = worker
                worker = null
                reused = false
                await dead.retire('died before its turn began')
                continue attempts
              }
              if (end.why === 'timeout') return timedOut()
              const result = await storedResult(turn, worker.lastResult)
              if (result) return outcomeOfResult(result, end.why === 'cancel', worker.lastResult)
              if (end.why === 'cancel') return cancelled('cancelled', null)
              const tail = r.stderrTail()
              return failed(
                `worker exited with code ${next.code} before its result${tail ? `: ${tail}` : ''}`,
              )
            }
            if (next.kind === 'deadline') {
              log.warn('the worker did not answer the interrupt; stopping it', { ending: end.why })
              await worker.stop()
              if (end.why === 'timeout') return timedOut()
              const result = await storedResult(turn, worker.lastResult)
              return cancelled(
                'cancelled',
                result ? resultSummary(result, worker.lastResult) : null,
              )
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
              await processes.terminate(r)
              return null
            }
            if (end.why === null) await interrupt('cancel')
            else end.why = 'cancel'
          }
        } finally {
          ac.abort()
          for (const t of timers) clearTimeout(t)
        }
      }
    } finally {
      watch.close()
      if (worker) {
        const w = worker
        // A process that is not kept ends before the push: what it writes last is pushed too.
        const keepable = survived && pool !== undefined && !w.gone
        if (!keepable) await w.stop()
        else w.kept = true
        const ended = await w.setup
          .endTurn?.(turn, log)
          .catch((err) => (log.error('turn cleanup failed', { err }), { current: false }))
        const keep = keepable && ended?.current === true && !w.gone && (await pool.park(w))
        if (!keep) await w.retire('its turn is over')
      }
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
