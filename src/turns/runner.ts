import type { Db } from '../db/handle.ts'
import {
  claimNextTurn,
  listAbandonedTurnIds,
  listRunningOwners,
  lockAbandonedTurn,
  renewLeases,
  updateTurn,
} from '../db/repos/turns.ts'
import type { TurnRow } from '../db/schema.ts'
import type { EventLog } from '../events/log.ts'
import type { Logger } from '../log.ts'
import { killLeftoverWorker } from '../worker/leftovers.ts'
import type { StopReason, TurnControl, TurnExecutor } from './executor.ts'
import { whileUnavailable } from '../db/unavailable.ts'
import { cancelled, endEvents, failed, queueTurnWebhook, type Outcome } from './outcome.ts'
import type { OwnerLiveness } from './owner.ts'
import type { WarmPool } from './warm-pool.ts'

const REQUEUED = 'the broker running it stopped before it finished'
/** How long a stopping broker waits for an away database to hand its turns back. */
const HANDBACK_WAIT_MS = 10_000
/** A lost turn is run again once; a second loss ends it. A cancel asked for is carried out. */
const recoveryOf = (turn: TurnRow): Outcome | null =>
  turn.cancelRequested
    ? cancelled('cancelled; the broker running it stopped before its worker did')
    : turn.attempts < 2
      ? null
      : failed('the broker running this turn stopped twice (crash or kill); not retried')

interface Active {
  turn: TurnRow
  control: TurnControl
  stop(reason: StopReason): void
  done: Promise<void>
}

/**
 * Claims queued turns (at most `maxWorkers` at once in this process), renews their leases, and
 * recovers turns whose broker died: re-queued once with an event saying so, failed after that.
 */
export function createTurnRunner(deps: {
  db: Db
  events: EventLog
  executor: TurnExecutor
  owner: string
  maxWorkers: number
  leaseMs: number
  /** Which other brokers are gone, so their turns are recovered without waiting for leases. */
  liveness: OwnerLiveness
  /** How often recovery looks for abandoned turns. */
  recoverEveryMs: number
  pollMs?: number
  log: Logger
  /** Idle warm workers hold slots of `maxWorkers` too; the least recently used gives its up. */
  pool?: Pick<WarmPool, 'enabled' | 'size' | 'has' | 'evictOldest'>
  /** How long another broker's warm session's turn is left to it before this one claims it. */
  warmPreferenceMs?: number
}) {
  const { db, log } = deps
  const active = new Map<string, Active>()
  let stopped = false
  let wakeUp: (() => void) | null = null
  // Set by every wake: one that comes while a claim is in flight (its query may not have seen
  // the new turn) makes the loop claim again instead of sleeping until the next poll.
  let woken = false
  const timers: Timer[] = []

  const wake = () => {
    woken = true
    wakeUp?.()
    wakeUp = null
  }

  /** One abandoned turn, in one transaction: re-queued with `turn_recovered`, or ended. */
  async function recoverTurn(turnId: string, sessionId: string, deadOwners: string[]) {
    let requeued = false
    await deps.events.append(sessionId, [], {
      source: 'broker',
      turnId,
      within: async (tx) => {
        const turn = await lockAbandonedTurn(tx, turnId, deadOwners)
        if (!turn || active.has(turn.id)) return []
        // Before the turn can be claimed again: a new worker must not meet the old one.
        await killLeftoverWorker(
          { turnId: turn.id, pgid: turn.workerPid, owner: turn.leaseOwner },
          log,
        )
        const outcome = recoveryOf(turn)
        if (outcome) {
          log.warn('turn ended after its broker stopped', { turnId, state: outcome.state })
          await updateTurn(tx, turn.id, {
            state: outcome.state,
            finishedAt: new Date(),
            error: outcome.error,
          })
          await queueTurnWebhook(tx, turn, outcome)
          return endEvents(turn.id, outcome)
        }
        log.warn('turn re-queued after a broker stopped', { turnId, attempts: turn.attempts })
        await updateTurn(tx, turn.id, {
          state: 'queued',
          leaseOwner: null,
          leaseExpiresAt: null,
          workerPid: null,
        })
        requeued = true
        const payload = { type: 'turn_recovered', turn_id: turn.id, attempt: turn.attempts }
        return [{ payload: { ...payload, reason: REQUEUED } }]
      },
    })
    return requeued
  }

  async function recover() {
    const dead = await deps.liveness.deadOwners(await listRunningOwners(db))
    let requeued = false
    for (const t of await listAbandonedTurnIds(db, dead))
      if (await recoverTurn(t.id, t.sessionId, dead)) requeued = true
    if (requeued) wake()
  }

  function launch(turn: TurnRow) {
    let stop!: (r: StopReason) => void
    let reason: StopReason | null = null
    const stopped = new Promise<StopReason>((resolve) => {
      stop = (r) => {
        if (reason) return
        reason = r
        resolve(r)
      }
    })
    const control: TurnControl = { stopped, reason: () => reason }
    const done = makeRoom(turn)
      .then(() => deps.executor.execute(turn, control))
      .catch((err) => log.error('turn executor crashed', { err, turnId: turn.id }))
      .finally(() => {
        active.delete(turn.id)
        wake()
      })
    active.set(turn.id, { turn, control, stop, done })
  }

  /** A turn that needs a new process waits for no slot: idle workers give theirs up. */
  async function makeRoom(turn: TurnRow) {
    const pool = deps.pool
    if (!pool?.enabled || pool.has(turn.sessionId)) return
    // This turn's process, the other running turns' and the idle ones.
    const processes = () =>
      1 + [...active.keys()].filter((id) => id !== turn.id).length + pool.size()
    while (processes() > deps.maxWorkers && (await pool.evictOldest())) {}
  }

  async function loop() {
    while (!stopped) {
      woken = false
      let claimed: TurnRow | null = null
      if (active.size < deps.maxWorkers) {
        try {
          claimed = await claimNextTurn(db, deps.owner, deps.leaseMs, deps.warmPreferenceMs)
        } catch (err) {
          log.error('could not claim a turn', { err })
        }
      }
      if (claimed) {
        launch(claimed)
        continue
      }
      if (woken) continue
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, deps.pollMs ?? 1000)
        function done() {
          clearTimeout(timer)
          wakeUp = null
          resolve()
        }
        wakeUp = done
      })
    }
  }

  async function renew() {
    const ids = [...active.keys()]
    if (ids.length === 0) return
    const held = await renewLeases(db, deps.owner, ids, deps.leaseMs)
    const heldIds = new Set(held.map((h) => h.id))
    for (const id of ids) if (!heldIds.has(id)) active.get(id)?.stop('lease-lost')
    for (const h of held) if (h.cancelRequested) active.get(h.id)?.stop('cancel')
  }

  /** A turn this broker stops running (shutdown) goes back to the queue, with an event. */
  async function handBack(id: string, turn: TurnRow) {
    await deps.events.append(turn.sessionId, [], {
      source: 'broker',
      turnId: id,
      within: async (tx) => {
        // A handed-back turn was not lost to a crash: its attempt does not count.
        const row = await updateTurn(
          tx,
          id,
          {
            state: 'queued',
            leaseOwner: null,
            leaseExpiresAt: null,
            workerPid: null,
            attempts: Math.max(0, turn.attempts - 1),
          },
          { state: 'running', owner: deps.owner },
        )
        const reason = 'the broker is shutting down'
        const payload = { type: 'turn_requeued', turn_id: id, reason }
        return row ? [{ payload, attempt: turn.attempts }] : []
      },
    })
  }

  const every = (ms: number, fn: () => Promise<void>, what: string) => {
    let busy = false
    timers.push(
      setInterval(() => {
        if (busy || stopped) return
        busy = true
        fn()
          .catch((err) => log.error(`${what} failed`, { err }))
          .finally(() => {
            busy = false
          })
      }, ms),
    )
  }

  return {
    /** Recovers what dead brokers left; run before this broker serves workers. */
    recover,
    start() {
      every(Math.max(100, Math.floor(deps.leaseMs / 3)), renew, 'lease renewal')
      every(deps.recoverEveryMs, recover, 'turn recovery')
      void loop()
    },
    wake,
    /** Stops a turn this process runs; false when it is not running here. */
    cancel(turnId: string): boolean {
      const a = active.get(turnId)
      a?.stop('cancel')
      return a !== undefined
    },
    activeCount: () => active.size,
    /** Hands running turns back to the queue and stops their workers. */
    async stop() {
      stopped = true
      wake()
      for (const t of timers) clearInterval(t)
      const running = [...active.entries()]
      for (const [, a] of running) a.stop('shutdown')
      await Promise.all(running.map(([, a]) => a.done))
      // During a database outage a hand-back waits a while for it; a turn it cannot hand back
      // is recovered by the next broker (this one's presence lock goes with it).
      for (const [id, a] of running)
        await whileUnavailable(() => handBack(id, a.turn), { deadlineMs: HANDBACK_WAIT_MS }).catch(
          (err) =>
            log.error('could not hand a running turn back; it will be recovered', {
              err,
              turnId: id,
            }),
        )
    },
  }
}

export type TurnRunner = ReturnType<typeof createTurnRunner>
