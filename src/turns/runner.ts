import { hostname } from 'node:os'
import { readdir, readFile } from 'node:fs/promises'
import type { Db } from '../db/open.ts'
import {
  claimNextTurn,
  listRunningOwners,
  lockAbandonedTurns,
  renewLeases,
  updateTurn,
} from '../db/repos/turns.ts'
import type { TurnRow } from '../db/schema.ts'
import type { EventLog } from '../events/log.ts'
import type { Logger } from '../log.ts'
import type { StopReason, TurnControl, TurnExecutor } from './executor.ts'

/** A broker's identity on its leases: host, pid and a nonce per start. */
export const newOwnerId = () =>
  `${hostname()}/${process.pid}/${crypto.randomUUID().slice(0, 8)}`

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Same host and a dead pid: that broker is gone, its leases need not run out first. */
function ownerIsDead(owner: string): boolean {
  const [host, pid] = owner.split('/')
  return host === hostname() && !pidAlive(Number(pid))
}

/**
 * Whether a stopped broker's worker of this turn is still alive: its group leader, or anything
 * left in its process group (a tool's child outlives a leader that died with its pipes). Both
 * are told apart from an unrelated process that reuses the id by the turn id in their
 * environment, which children inherit.
 */
async function leftoverGroupAlive(turn: TurnRow, pgid: number): Promise<boolean> {
  const marker = `CCBROKER_TURN_ID=${turn.id}`
  const carries = async (pid: string) =>
    (await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '')).split('\0').includes(marker)
  if (await carries(String(pgid))) return true
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
    // "pid (comm) state ppid pgrp …": comm may hold spaces, so count from its ')'.
    const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])
    if (pgrp === pgid && (await carries(pid))) return true
  }
  return false
}

/** Kills what is left of a crashed broker's worker (its whole process group) on this host. */
async function killLeftoverWorker(turn: TurnRow, log: Logger) {
  const pgid = turn.workerPid
  if (!pgid || !turn.leaseOwner?.startsWith(`${hostname()}/`)) return
  if (!(await leftoverGroupAlive(turn, pgid))) return
  log.warn('killing the worker a stopped broker left behind', { turnId: turn.id, pid: pgid })
  try {
    process.kill(-pgid, 'SIGKILL')
  } catch {
    // Gone already.
  }
}

/** What recovery does with a turn whose broker stopped, and what it says about it. */
type Recovery = { state: 'queued' | 'failed' | 'cancelled'; error: string; log: string }
const RECOVERED = {
  requeued: {
    state: 'queued',
    error: 'the broker running it stopped before it finished',
    log: 'turn re-queued after a broker stopped',
  },
  failed: {
    state: 'failed',
    error: 'the broker running this turn stopped twice (crash or kill); not retried',
    log: 'turn failed after a second broker stop',
  },
  cancelled: {
    state: 'cancelled',
    error: 'cancelled; the broker running it stopped before its worker did',
    log: 'cancel carried out after a broker stopped',
  },
} satisfies Record<string, Recovery>

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
  /** PGlite: one process per data directory, so every other owner is a dead one. */
  exclusive: boolean
  pollMs?: number
  log: Logger
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

  async function recover() {
    const owners = await listRunningOwners(db)
    const dead = owners.filter((o) => o !== deps.owner && (deps.exclusive || ownerIsDead(o)))
    const recovered = await db.transaction(async (tx) => {
      const t = tx as unknown as Db
      const rows = await lockAbandonedTurns(t, dead)
      const out: { turn: TurnRow; outcome: Recovery }[] = []
      for (const turn of rows) {
        if (active.has(turn.id)) continue
        // Before the turn can be claimed again: a new worker must not meet the old one.
        await killLeftoverWorker(turn, log)
        // A cancel its broker had no time to carry out is carried out here, not run again.
        const outcome = turn.cancelRequested
          ? RECOVERED.cancelled
          : turn.attempts < 2
            ? RECOVERED.requeued
            : RECOVERED.failed
        await updateTurn(
          t,
          turn.id,
          outcome.state === 'queued'
            ? { state: 'queued', leaseOwner: null, leaseExpiresAt: null, workerPid: null }
            : { state: outcome.state, finishedAt: new Date(), error: outcome.error },
        )
        out.push({ turn, outcome })
      }
      return out
    })
    for (const { turn, outcome } of recovered) {
      log.warn(outcome.log, { turnId: turn.id, attempts: turn.attempts })
      const { state, error } = outcome
      const payloads: Record<string, unknown>[] =
        state === 'queued'
          ? [{ type: 'turn_recovered', turn_id: turn.id, attempt: turn.attempts, reason: error }]
          : [
              ...(state === 'failed' ? [{ type: 'error', turn_id: turn.id, message: error }] : []),
              { type: 'done', turn_id: turn.id, state, error, result: null },
            ]
      await deps.events.append(
        turn.sessionId,
        payloads.map((payload) => ({ payload })),
        { source: 'broker', turnId: turn.id },
      )
    }
    if (recovered.some((r) => r.outcome.state === 'queued')) wake()
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
    const done = deps.executor
      .execute(turn, control)
      .catch((err) => log.error('turn executor crashed', { err, turnId: turn.id }))
      .finally(() => {
        active.delete(turn.id)
        wake()
      })
    active.set(turn.id, { turn, control, stop, done })
  }

  async function loop() {
    while (!stopped) {
      woken = false
      let claimed: TurnRow | null = null
      if (active.size < deps.maxWorkers) {
        try {
          claimed = await claimNextTurn(db, deps.owner, deps.leaseMs)
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
    async start() {
      await recover()
      every(Math.max(100, Math.floor(deps.leaseMs / 3)), renew, 'lease renewal')
      every(deps.leaseMs, recover, 'turn recovery')
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
      for (const [id, a] of running) {
        // A handed-back turn was not lost to a crash: its attempt does not count.
        const row = await updateTurn(
          db,
          id,
          {
            state: 'queued',
            leaseOwner: null,
            leaseExpiresAt: null,
            workerPid: null,
            attempts: Math.max(0, a.turn.attempts - 1),
          },
          { state: 'running', owner: deps.owner },
        )
        if (row)
          await deps.events.append(
            row.sessionId,
            [{ payload: { type: 'turn_requeued', turn_id: id, reason: 'the broker is shutting down' } }],
            { source: 'broker', turnId: id },
          )
      }
    },
  }
}

export type TurnRunner = ReturnType<typeof createTurnRunner>
