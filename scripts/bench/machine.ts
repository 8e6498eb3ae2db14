// Whole-machine CPU use from /proc (Linux; null elsewhere). The benchmark shares its cores with
// whatever else runs there, so each run reports how much CPU *other* processes took meanwhile:
// machine busy minus this process, the given pids (child processes, our Postgres backends).
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'

// USER_HZ: /proc/<pid>/stat counts clock ticks of 10 ms on every Linux this runs on.
const TICK_MS = 10

function machineTimes(): { total: number; idle: number } | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!
    const n = line.trim().split(/\s+/).slice(1).map(Number)
    return { total: n.reduce((a, b) => a + b, 0), idle: (n[3] ?? 0) + (n[4] ?? 0) }
  } catch {
    return null
  }
}

/** utime + stime of a process in ms (0 when it is gone). */
function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS
  } catch {
    return 0
  }
}

export interface Load {
  /** % of all cores busy. */
  busy: number
  /** % of all cores taken by processes other than ours. */
  others: number
}

/**
 * Starts a measurement over this process plus `pids`; the result ends it. Pids passed only at
 * the end (e.g. a database connection opened meanwhile) count from zero.
 */
export function startLoadMeter(pids: number[] = []): (laterPids?: number[]) => Load | null {
  const m0 = machineTimes()
  const wall0 = performance.now()
  const own0 = process.cpuUsage()
  const pid0 = pids.map(cpuMsOf)
  return (laterPids = []) => {
    const m1 = machineTimes()
    if (!m0 || !m1 || m1.total === m0.total) return null
    const busy = (100 * (m1.total - m0.total - (m1.idle - m0.idle))) / (m1.total - m0.total)
    const own = process.cpuUsage(own0)
    const fresh = laterPids.filter((p) => !pids.includes(p))
    const oursMs =
      (own.user + own.system) / 1000 +
      pids.reduce((a, p, i) => a + cpuMsOf(p) - pid0[i]!, 0) +
      fresh.reduce((a, p) => a + cpuMsOf(p), 0)
    const ours = (100 * oursMs) / ((performance.now() - wall0) * availableParallelism())
    return { busy: Math.round(busy), others: Math.max(0, Math.round(busy - ours)) }
  }
}

/** Starts a measurement; calling the result gives % of all cores busy since then. */
export function machineBusy(): () => number | null {
  const done = startLoadMeter()
  return () => done()?.busy ?? null
}

/** % of all cores busy over the next `ms`, before any load of ours starts. */
export async function backgroundBusy(ms = 1000): Promise<number | null> {
  const done = startLoadMeter()
  await Bun.sleep(ms)
  return done()?.busy ?? null
}

export const loadText = (l: Load | null) =>
  l ? `; machine ${l.busy}% busy, ${l.others}% by others${l.others > 10 ? ' (NOISY)' : ''}` : ''
