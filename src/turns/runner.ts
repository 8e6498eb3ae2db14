import { hostname } from 'node:os'
import { readFile } from 'node:fs/promises'
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

/** Kills what is left of a crashed broker's worker, if it is still the turn's process. */
async function killLeftoverWorker(turn: TurnRow, log: Logger) {
  if (!turn.workerPid || !turn.leaseOwner?.startsWith(`${hostname()}/`)) return
  const environ = await readFile(`/proc/${turn.workerPid}/environ`, 'utf8').catch(() => '')
  if (!environ.split('\0').includes(`CCBROKER_TURN_ID=${turn.id}`)) return
  log.warn('killing the worker a stopped broker left behind', { pid: turn.workerPid })
  try {
    process.kill(-turn.workerPid, 'SIGKILL')
  } catch {
    // Gone already.
  }
}

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
  const timers: Timer[] = []

  const wake = () => {
    wakeUp?.()
    wakeUp = null
  }

  async function recover() {
    const owners = await listRunningOwners(db)
    const dead = owners.filter((o) => o !== deps.owner && (deps.exclusive || ownerIsDead(o)))
    const recovered = await db.transaction(async (tx) => {
      const t = tx as unknown as Db
      const rows = await lockAbandonedTurns(t, dead)
      const out: { turn: TurnRow; requeued: boolean }[] = []
      for (const turn of rows) {
        if (active.has(turn.id)) continue
        const requeued = turn.attempts < 2
        await updateTurn(
          t,
          turn.id,
          requeued
            ? { state: 'queued', leaseOwner: null, leaseExpiresAt: null, workerPid: null }
            : {
                state: 'failed',
                finishedAt: new Date(),
                error: 'the broker running this turn stopped twice (crash or kill); not retried',
              },
        )
        out.push({ turn, requeued })
      }
      return out
    })
    for (const { turn, requeued } of recovered) {
      await killLeftoverWorker(turn, log)
      const reason = 'the broker running it stopped before it finished'
      log.warn(requeued ? 'turn re-queued after a broker stopped' : 'turn failed after a second broker stop', {
        turnId: turn.id,
        attempts: turn.attempts,
      })
      const payloads: Record<string, unknown>[] = requeued
        ? [{ type: 'turn_recovered', turn_id: turn.id, attempt: turn.attempts, reason }]
        : [
            {
              type: 'error',
              turn_id: turn.id,
              message: 'the broker running this turn stopped twice (crash or kill); not retried',
            },
            {
              type: 'done',
              turn_id: turn.id,
              state: 'failed',
              error: 'the broker running this turn stopped twice (crash or kill); not retried',
              result: null,
            },
          ]
      await deps.events.append(
        turn.sessionId,
        payloads.map((payload) => ({ payload })),
        { source: 'broker', turnId: turn.id },
      )
    }
    if (recovered.some((r) => r.requeued)) wake()
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
      await new Promise<void>((resolve) => {
        wakeUp = resolve
        setTimeout(resolve, deps.pollMs ?? 1000)
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
