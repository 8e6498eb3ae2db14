// Benchmark of the turn path with the fake worker (src/testing/fake-claude, stdio,
// `echo`): the broker's own time around each worker, turns per second across sessions, and the
// broker's memory. Prints figures and a markdown table; asserts nothing.
//
//   bun scripts/bench/turns.ts [--turns 200] [--sessions 50] [--soak 1000] [--workers 4]
//                              [--only pglite,postgres] [--skip overhead,memory]
//
// `overhead` (with throughput) runs on a broker in this process, one turn at a time, on PGlite and a fresh
// Postgres database at CCBROKER_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/
// postgres; skipped when unreachable):
//   enqueue → spawn   POST /api/v2/turns sent → the executor's `worker started` (process spawned)
//   exit → done       the worker process gone (stamped by its wrapper) → `turn finished` (done
//                     committed), i.e. result handling, cleanup, workspace push and the done write
// Memory is the RSS of a broker process (`bun src/main.ts`, PGlite) read from /proc.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import postgres from 'postgres'
import { startBroker } from '../../src/broker.ts'
import { loadConfig } from '../../src/config.ts'
import { createLogger } from '../../src/log.ts'
import { backgroundBusy, loadText, startLoadMeter } from './machine.ts'
import { markdownTable, mib, ms, percentiles } from './stats.ts'

const ROOT = resolve(import.meta.dir, '../..')
const FIXTURE = join(ROOT, 'src/testing/fake-claude/main.ts')
const env = (name: string) => process.env[`CCBROKER_BENCH_${name.toUpperCase()}`]
const { values: args } = parseArgs({
  options: {
    turns: { type: 'string', default: env('turns') ?? '200' },
    sessions: { type: 'string', default: env('sessions') ?? '50' },
    soak: { type: 'string', default: env('soak') ?? '1000' },
    workers: { type: 'string', default: env('workers') ?? '4' },
    only: { type: 'string', default: env('only') ?? 'pglite,postgres' },
    skip: { type: 'string', default: env('skip') ?? '' },
  },
})
const turns = Number(args.turns)
const sessions = Number(args.sessions)
const soak = Number(args.soak)
const workers = Number(args.workers)
const skip = new Set(args.skip.split(',').filter(Boolean))
const only = new Set(args.only.split(','))
const adminUrl = env('database_url') ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const now = () => performance.timeOrigin + performance.now()
const say = (s: string) => console.log(s)

const work = await mkdtemp(join(tmpdir(), 'ccb-bench-turns-'))
const exitsFile = join(work, 'exits')
// The fake as a child of a shell that stamps the moment it exited, for `exit → done`.
const bin = join(work, 'claude')
await writeFile(
  bin,
  // One transpiler cache for all: in each turn's fresh HOME, Bun would write (and the broker
  // remove) 2 MB of cache for the fake, which real Claude Code does not do.
  `#!/bin/sh\nexport BUN_RUNTIME_TRANSPILER_CACHE_PATH="${join(work, 'bun-cache')}"\n` +
    `"${process.execPath}" --no-env-file "${FIXTURE}" "$@"\ncode=$?\n` +
    `echo "$CCBROKER_TURN_ID $(date +%s%N)" >> "${exitsFile}"\nexit $code\n`,
)
await chmod(bin, 0o755)
const brokerEnv = (dataDir: string) => ({
  CCBROKER_DATA_DIR: dataDir,
  CCBROKER_CLAUDE_BIN: bin,
  CCBROKER_WORKER_TRANSPORT: 'stdio',
  CCBROKER_MAX_WORKERS: String(workers),
  // A process per turn: this measures the broker around each spawn and exit (warm workers:
  // scripts/bench/warm-turns.ts).
  CCBROKER_WORKER_IDLE_MS: '0',
})

type Row = [string, string, string]
const table: Row[] = []
const busyBefore = await backgroundBusy()

async function post(url: string, body: unknown) {
  const res = await fetch(`${url}/api/v2/turns`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  if (res.status !== 202) throw new Error(`enqueue → ${res.status} ${await res.text()}`)
  return ((await res.json()) as { turn_id: string }).turn_id
}

/** Resolves when every turn in `ids` has finished (from the broker's `turn finished` log). */
function finishWatch() {
  const finished = new Map<string, number>()
  const started = new Map<string, number>()
  const waiters = new Map<string, () => void>()
  const log = createLogger('info', {}, (line) => {
    const at = now()
    if (line.includes('"worker started"')) started.set(JSON.parse(line).turnId, at)
    else if (line.includes('"turn finished"')) {
      const { turnId, state } = JSON.parse(line)
      if (state !== 'done') console.error(`turn ${turnId} ended ${state}: ${line}`)
      finished.set(turnId, at)
      waiters.get(turnId)?.()
    } else if (line.includes('"level":"error"')) console.error(line.trim())
  })
  const done = (id: string) =>
    finished.has(id) ? Promise.resolve() : new Promise<void>((r) => waiters.set(id, r))
  return { log, started, finished, done }
}

/** A fresh Postgres database for one run, dropped after it; null when the server is down. */
async function freshDatabase(): Promise<{ url: string; drop(): Promise<void> } | null> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {}, connect_timeout: 5 })
  const name = `ccb_bench_turns_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`
  try {
    await admin.unsafe(`create database ${name}`)
  } catch (err) {
    await admin.end({ timeout: 1 })
    say(`Postgres skipped: ${(err as Error).message}`)
    return null
  }
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    async drop() {
      await admin.unsafe(`drop database if exists ${name} with (force)`)
      await admin.end({ timeout: 5 })
    },
  }
}

async function overheadAndThroughput(db: 'PGlite' | 'Postgres') {
  const database = db === 'Postgres' ? await freshDatabase() : null
  if (db === 'Postgres' && !database) return
  const dataDir = join(work, `inproc-${db}`)
  const watch = finishWatch()
  const config = loadConfig({
    CCBROKER_PORT: '0',
    ...brokerEnv(dataDir),
    ...(database
      ? {
          CCBROKER_DATABASE_URL: database.url,
          CCBROKER_JWT_SECRET: 'bench-secret-bench-secret-bench-secret-0123',
        }
      : {}),
  })
  const broker = await startBroker(config, watch.log)
  try {
    // Overhead: one turn at a time, over 20 sessions (their second turns resume a transcript).
    const enqueuedAt = new Map<string, number>()
    const warm = 5
    // The fake workers count as "others": they are not this process.
    const overheadLoad = startLoadMeter()
    const ids: string[] = []
    for (let i = 0; i < turns + warm; i++) {
      const t0 = now()
      const id = await post(broker.url, {
        session_id: `ovh-${i % 20}`,
        workspace_id: 'bench',
        user_message: `turn ${i}`,
      })
      enqueuedAt.set(id, t0)
      await watch.done(id)
      if (i >= warm) ids.push(id)
    }
    const exits = new Map(
      (await readFile(exitsFile, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => l.split(' '))
        .map(([id, ns]) => [id!, Number(BigInt(ns!) / 1000n) / 1000] as const),
    )
    const toSpawn = ids.map((id) => watch.started.get(id)! - enqueuedAt.get(id)!)
    const exitToDone = ids.map((id) => watch.finished.get(id)! - exits.get(id)!)
    const life = ids.map((id) => exits.get(id)! - watch.started.get(id)!)
    const total = ids.map((id) => watch.finished.get(id)! - enqueuedAt.get(id)!)
    const [s50, s99] = percentiles(toSpawn, [50, 99])
    const [d50, d99] = percentiles(exitToDone, [50, 99])
    const [l50] = percentiles(life, [50])
    const [t50, t99] = percentiles(total, [50, 99])
    const load = overheadLoad()
    say(
      `${db}: overhead over ${turns} turns, one at a time (after ${warm} warm-up turns${loadText(load)}):`,
    )
    say(`  enqueue → spawn   p50 ${ms(s50!)}  p99 ${ms(s99!)}`)
    say(`  exit → done       p50 ${ms(d50!)}  p99 ${ms(d99!)}`)
    say(
      `  broker overhead   p50 ${ms(s50! + d50!)} (sum of the two p50s); the worker itself ${ms(l50!)} p50`,
    )
    say(`  enqueue → done    p50 ${ms(t50!)}  p99 ${ms(t99!)}`)
    table.push(
      [
        `${db}: enqueue → worker spawned`,
        `p50 ${ms(s50!)}, p99 ${ms(s99!)}`,
        `${turns} turns, one at a time`,
      ],
      [
        `${db}: worker exit → turn done`,
        `p50 ${ms(d50!)}, p99 ${ms(d99!)}`,
        'cleanup, workspace push, done',
      ],
      [`${db}: broker overhead per turn`, `p50 ${ms(s50! + d50!)}`, 'the two p50s; target < 20 ms'],
      [
        `${db}: whole turn`,
        `p50 ${ms(t50!)}, p99 ${ms(t99!)}`,
        `the fake worker alive ${ms(l50!)} p50`,
      ],
    )

    // Throughput: `sessions` sessions with 4 turns each, all queued at once.
    const perSession = 4
    const meter = startLoadMeter()
    const t0 = now()
    const batch = await Promise.all(
      Array.from({ length: sessions }, async (_, s) => {
        const mine: string[] = []
        for (let k = 0; k < perSession; k++)
          mine.push(
            await post(broker.url, {
              session_id: `tp-${s}`,
              workspace_id: 'bench',
              user_message: `t${k}`,
            }),
          )
        return mine
      }),
    )
    await Promise.all(batch.flat().map(watch.done))
    const seconds = (now() - t0) / 1000
    const tps = (sessions * perSession) / seconds
    say(
      `${db}: throughput: ${sessions * perSession} turns over ${sessions} sessions in ${seconds.toFixed(1)} s → ${tps.toFixed(1)} turns/s (${workers} workers${loadText(meter())})`,
    )
    table.push([
      `${db}: turns per second`,
      `${tps.toFixed(1)}/s`,
      `${sessions} sessions × ${perSession}, ${workers} workers`,
    ])
  } finally {
    await broker.stop()
    await database?.drop()
  }
}

/** VmRSS of a process, in bytes. */
async function rss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024
}

async function memory() {
  const dataDir = join(work, 'proc')
  const proc = Bun.spawn([process.execPath, '--no-env-file', 'src/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: work,
      CCBROKER_PORT: '0',
      ...brokerEnv(dataDir),
    },
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'pipe',
  })
  try {
    // The log tells when each turn finished; it must be read anyway, or the pipe fills up.
    const finished = new Set<string>()
    let url = ''
    let wake = () => {}
    void (async () => {
      let buffer = ''
      for await (const chunk of proc.stderr) {
        buffer += new TextDecoder().decode(chunk)
        const lines = buffer.split('\n')
        buffer = lines.pop()!
        for (const line of lines) {
          if (line.includes('"broker listening"')) url = JSON.parse(line).url
          else if (line.includes('"turn finished"')) finished.add(JSON.parse(line).turnId)
        }
        wake()
      }
    })()
    const until = async (ok: () => boolean) => {
      while (!ok()) await new Promise<void>((r) => (wake = r))
    }
    await until(() => url !== '')
    const started = await rss(proc.pid)
    const run = async (count: number, label: string) => {
      // Spread over the sessions, each session's turns in order, `workers` sessions at a time.
      const ids: string[] = []
      for (let i = 0; i < count; i += sessions) {
        const wave = await Promise.all(
          Array.from({ length: Math.min(sessions, count - i) }, (_, s) =>
            post(url, {
              session_id: `mem-${s}`,
              workspace_id: 'bench',
              user_message: `${label} ${i + s}`,
            }),
          ),
        )
        ids.push(...wave)
        await until(() => wave.every((id) => finished.has(id)))
      }
      return ids
    }
    await run(sessions, 'first')
    const idle = await rss(proc.pid)
    say(
      `RSS: ${mib(started)} at start, ${mib(idle)} with ${sessions} sessions idle (one turn each)`,
    )
    const samples: number[] = []
    for (let done = 0; done < soak; done += 100) {
      await run(Math.min(100, soak - done), 'soak')
      samples.push(await rss(proc.pid))
    }
    say(`RSS every 100 turns: ${samples.map(mib).join(', ')}`)
    const growth = samples.at(-1)! - samples[0]!
    table.push(
      ['RSS, broker at start', mib(started), 'PGlite, `bun src/main.ts`'],
      [`RSS, ${sessions} sessions idle`, mib(idle), 'after one turn each'],
      [
        `RSS growth over ${soak} turns`,
        `${growth >= 0 ? '+' : ''}${mib(growth)}`,
        `after 100: ${mib(samples[0]!)}, after ${soak}: ${mib(samples.at(-1)!)}`,
      ],
    )
  } finally {
    proc.kill('SIGTERM')
    await proc.exited
  }
}

try {
  say(
    `cc-broker turn benchmark: ${availableParallelism()} cores, machine ${busyBefore}% busy before the run`,
  )
  for (const db of ['PGlite', 'Postgres'] as const)
    if (only.has(db.toLowerCase()) && !skip.has('overhead')) await overheadAndThroughput(db)
  if (!skip.has('memory')) await memory()
  say('')
  say(markdownTable(['measure', 'value', 'notes'], table))
} finally {
  await rm(work, { recursive: true, force: true })
}
