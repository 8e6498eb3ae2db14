import { hostname } from 'node:os'
import type { Logger } from '../log.ts'
import { environOf, groupMembers } from '../processes.ts'

/** What a stopped broker recorded of a worker it ran: the turn, its process group, its owner. */
export interface WorkerTrace {
  turnId: string
  /** The worker's pid, which is its process group id (workers start detached). */
  pgid: number | null
  /** The lease owner, `<host>/<pid>/<nonce>`: only a worker of this host can be found here. */
  owner: string | null
}

/**
 * Whether anything of that worker still runs on this host: its group leader, or anything left
 * in its process group (a tool's child outlives a leader that died with its pipes). Told apart
 * from an unrelated process reusing the id by the turn id in its environment, which children
 * inherit.
 */
async function leftoverAlive(trace: WorkerTrace, pgid: number): Promise<boolean> {
  const marker = `CCBROKER_TURN_ID=${trace.turnId}`
  for (const pid of [pgid, ...(await groupMembers(pgid))])
    if ((await environOf(pid)).includes(marker)) return true
  return false
}

/** Kills what is left of a crashed broker's worker (its whole process group) on this host. */
export async function killLeftoverWorker(trace: WorkerTrace, log: Logger): Promise<void> {
  const pgid = trace.pgid
  if (!pgid || !trace.owner?.startsWith(`${hostname()}/`)) return
  if (!(await leftoverAlive(trace, pgid))) return
  log.warn('killing the worker a stopped broker left behind', { turnId: trace.turnId, pid: pgid })
  try {
    process.kill(-pgid, 'SIGKILL')
  } catch {
    // Gone already.
  }
}
