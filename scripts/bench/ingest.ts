// Benchmark of the broker's event path on PGlite and Postgres: sustained worker-event ingest
// against the raw INSERT ceiling of the same database, SSE listener latency under a steady
// producer, and PGlite start-up. Prints figures and a markdown table; asserts nothing.
//
//   bun run bench [--events 50000] [--sessions 4,1] [--listeners 100] [--rate 1000]
//                 [--seconds 10] [--only pglite,postgres] [--skip ingest,latency,cold] [--src DIR]
//
// Each option can also come from CCBROKER_BENCH_<NAME> (e.g. CCBROKER_BENCH_EVENTS=20000).
// Postgres: a fresh database on CCBROKER_BENCH_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432/postgres), dropped at the end; skipped when unreachable.
// --src benchmarks another checkout's src/ (to compare a change) with this harness.
import { availableParallelism, cpus, release, totalmem } from 'node:os'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { backgroundBusy, loadText } from './machine.ts'
import { listenerLatency, type LatencyResult } from './latency.ts'
import { brokerIngest, pgliteColdStart, rawIngest } from './runs.ts'
import type { ColdStart, IngestResult } from './runs.ts'
import { markdownTable, median, mib, ms, rate } from './stats.ts'
import { DEFAULT_SRC, pgliteTarget, postgresTarget, type Target } from './targets.ts'

const env = (name: string) => process.env[`CCBROKER_BENCH_${name.toUpperCase()}`]
const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: env('events') ?? '50000' },
    sessions: { type: 'string', default: env('sessions') ?? '4,1' },
    listeners: { type: 'string', default: env('listeners') ?? '100' },
    rate: { type: 'string', default: env('rate') ?? '1000' },
    seconds: { type: 'string', default: env('seconds') ?? '10' },
    only: { type: 'string', default: env('only') ?? 'pglite,postgres' },
    skip: { type: 'string', default: env('skip') ?? '' },
    src: { type: 'string', default: env('src') ?? DEFAULT_SRC },
  },
})
const whole = (name: string, v: string, min: number, max: number) => {
  const n = Number(v)
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`--${name}: expected a whole number ${min}..${max}, got "${v}"`)
  return n
}
const events = whole('events', args.events, 100, 2_000_000)
const sessionCounts = args.sessions.split(',').map((s) => whole('sessions', s, 1, 64))
const latency = {
  listeners: whole('listeners', args.listeners, 1, 1000),
  rate: whole('rate', args.rate, 10, 100_000),
  seconds: whole('seconds', args.seconds, 1, 120),
  batchSize: 10,
}
const only = new Set(args.only.split(','))
const skip = new Set(args.skip.split(',').filter(Boolean))
const srcDir = resolve(args.src)
// The package's exports map hides package.json from import(): read the file itself.
const pgliteVersion = (await Bun.file(
  new URL('../../node_modules/@electric-sql/pglite/package.json', import.meta.url),
).json()) as { version: string }
const adminUrl = env('database_url') ?? 'postgres://postgres@127.0.0.1:5432/postgres'

type IngestPair = { sessions: number; broker: IngestResult; raw: IngestResult }
interface DbResult {
  version: string
  ingest: IngestPair[]
  latency: LatencyResult | null
}
const results = new Map<string, DbResult>()
const notes: string[] = []

const say = (s: string) => console.log(s)
const ingestLine = (what: string, r: IngestResult) =>
  `  ${what.padEnd(30)} ${rate(r.eventsPerSec).padStart(9)}` +
  `  (${r.events} events in ${ms(r.wallMs, 0)};` +
  ` per request p50 ${ms(r.requestMs[0]!)} p99 ${ms(r.requestMs[1]!)}; stored ${r.stored}` +
  `${loadText(r.load)}${r.failures ? `; ${r.failures} FAILED: ${r.failureSample}` : ''})`

function latencyLines(l: LatencyResult) {
  const [p50, p99, max, min] = l.fromAckMs.map((v) => ms(v))
  const got =
    l.receivedRange[0] === l.receivedRange[1] ? `${l.receivedRange[0]}` : l.receivedRange.join('..')
  return [
    `  ${l.listeners} listeners, producer ${rate(latency.rate)} asked,` +
      ` ${rate(l.achievedRate)} achieved (worst batch ${ms(l.producerMaxLateMs, 0)} late;` +
      ` POST p50 ${ms(l.postMs[0]!)} p99 ${ms(l.postMs[1]!)})`,
    `    POST 200 → listener:  p50 ${p50} p99 ${p99} max ${max} (min ${min}: sent before the 200;` +
      ` clocks ±${ms(l.clockErrorMs, 2)})`,
    `    POST sent → listener: p50 ${ms(l.fromSendMs[0]!)} p99 ${ms(l.fromSendMs[1]!)}` +
      ` max ${ms(l.fromSendMs[2]!)}`,
    `    received per listener: ${got} of ${l.events} sent` +
      `${l.events < l.planned ? ` (${l.planned} planned; the producer hit its deadline)` : ''};` +
      ` missing (event, listener) pairs: ${l.missing};` +
      ` frames ${JSON.stringify(l.listenerStats)}`,
    `    CPU, % of one core: broker ${l.cpuPercent.broker}, listeners ${l.cpuPercent.listeners},` +
      ` producer ${l.cpuPercent.producer}${loadText(l.load)}`,
    ...l.producerFailures.map((f) => `    producer failure: ${f}`),
  ]
}

async function benchTarget(target: Target) {
  say(`\n## ${target.name} ${target.version}`)
  const out: DbResult = { version: target.version, ingest: [], latency: null }
  // Warm-up (JIT, statement caches); not reported.
  await rawIngest(target, 1, 2000)
  await brokerIngest(target, 1, 2000)
  for (const n of skip.has('ingest') ? [] : sessionCounts) {
    const raw = await rawIngest(target, n, events)
    say(ingestLine(`raw INSERT, ${n} in parallel`, raw))
    const broker = await brokerIngest(target, n, events)
    say(ingestLine(`broker, ${n} session(s)`, broker))
    say(`  broker / raw: ${(broker.eventsPerSec / raw.eventsPerSec).toFixed(2)}`)
    out.ingest.push({ sessions: n, broker, raw })
  }
  if (!skip.has('latency')) {
    out.latency = await listenerLatency(target, latency)
    for (const line of latencyLines(out.latency)) say(line)
  }
  if (target.logged.size)
    say(`  broker logged: ${JSON.stringify(Object.fromEntries(target.logged))}`)
  results.set(target.name, out)
}

const t0 = performance.now()
const before = await backgroundBusy()
say(`# cc-broker event path (${events} events per ingest run; src ${srcDir})`)
say(
  `machine ${before ?? '?'}% busy before start` +
    ((before ?? 0) > 15 ? ' — other load: figures will be low and noisy' : ''),
)
if (only.has('pglite')) {
  await using target = await pgliteTarget(srcDir)
  await benchTarget(target)
}
if (only.has('postgres')) {
  const skipped = (reason: string) => {
    notes.push(`Postgres skipped: ${reason}`)
    say(`\n## Postgres skipped: ${reason}`)
  }
  await using target = await postgresTarget(adminUrl, Math.max(...sessionCounts), skipped, srcDir)
  if (target) await benchTarget(target)
}
let cold: { fresh: ColdStart; existing: ColdStart[] } | null = null
if (!skip.has('cold') && only.has('pglite')) {
  say('\n## PGlite start (a fresh process each time)')
  cold = await pgliteColdStart(3, srcDir)
  const line = (c: ColdStart) =>
    `startBroker ${ms(c.startMs, 0)}, process start → listening ` +
    `${ms(c.sinceProcessStartMs, 0)}, RSS ${mib(c.rssBytes)}`
  say(`  fresh data dir:    ${line(cold.fresh)}`)
  for (const c of cold.existing) say(`  existing data dir: ${line(c)}`)
}
const after = await backgroundBusy()

// ---- summary ----
const cols = ['PGlite', 'Postgres'].map((name) => results.get(name))
const row = (label: string, f: (r: DbResult) => string, target = '') => [
  label,
  ...cols.map((r) => (r ? f(r) : '—')),
  target,
]
const pair = (n: number, f: (i: IngestPair) => string) => (r: DbResult) => {
  const i = r.ingest.find((x) => x.sessions === n)
  return i ? f(i) : '—'
}
const lat = (f: (l: LatencyResult) => string) => (r: DbResult) => (r.latency ? f(r.latency) : '—')
const rows: string[][] = []
for (const n of skip.has('ingest') ? [] : sessionCounts) {
  const who = n === 1 ? '1 session' : `${n} sessions`
  rows.push(
    row(
      `ingest, ${who} × 1 request in flight`,
      pair(n, (i) => rate(i.broker.eventsPerSec)),
    ),
  )
  rows.push(
    row(
      `raw INSERT ceiling, ${n} connection(s)`,
      pair(n, (i) => rate(i.raw.eventsPerSec)),
    ),
  )
  rows.push(
    row(
      `broker / raw, ${who}`,
      pair(n, (i) => (i.broker.eventsPerSec / i.raw.eventsPerSec).toFixed(2)),
      'Postgres ≥ 0.50',
    ),
  )
  rows.push(
    row(
      `POST of 100 events p50 / p99, ${who}`,
      pair(n, (i) => `${ms(i.broker.requestMs[0]!)} / ${ms(i.broker.requestMs[1]!)}`),
    ),
  )
}
if (!skip.has('latency')) {
  const what = `${latency.listeners} listeners at ${latency.rate} events/s`
  const fixed = (v: number) => v.toFixed(1)
  rows.push(
    row(
      `producer rate achieved (${what})`,
      lat((l) => rate(l.achievedRate)),
      `${latency.rate}/s`,
    ),
  )
  rows.push(
    row(
      'listener latency p50 / p99 / max (POST 200 → frame)',
      lat((l) => `${l.fromAckMs.slice(0, 3).map(fixed).join(' / ')} ms`),
      'p99 < 50 ms',
    ),
  )
  rows.push(
    row(
      'listener latency p50 / p99 (POST sent → frame)',
      lat((l) => `${l.fromSendMs.slice(0, 2).map(fixed).join(' / ')} ms`),
    ),
  )
  rows.push(
    row(
      'events received per listener',
      lat(
        (l) =>
          `${l.receivedRange[0] === l.events ? 'all' : l.receivedRange[0]} of ${l.events} sent`,
      ),
      'all',
    ),
  )
}
if (cold) {
  const existing = cold.existing
  rows.push(['start, fresh data dir', ms(cold.fresh.startMs, 0), '—', ''])
  rows.push([
    'start, existing data dir (median of 3)',
    ms(median(existing.map((c) => c.startMs)), 0),
    '—',
    '< 1 s',
  ])
  rows.push([
    'RSS after start, existing data dir',
    mib(median(existing.map((c) => c.rssBytes))),
    '—',
    '',
  ])
}
const pgVersion = (name: string) => results.get(name)?.version ?? 'not run'
say('\n## Summary\n')
say(
  `${availableParallelism()} cores (${cpus()[0]?.model ?? 'unknown CPU'}), ${mib(totalmem())}, ` +
    `Linux ${release()}; Bun ${Bun.version} (${Bun.revision.slice(0, 9)}); ` +
    `PGlite ${pgliteVersion.version} (PostgreSQL ${pgVersion('PGlite')}); ` +
    `Postgres ${pgVersion('Postgres')}. Machine ${before ?? '?'}% / ${after ?? '?'}% busy ` +
    `before / after. Broker and ingest load in one ` +
    `process; SSE listeners and the latency producer in two others. ~1 KB \`assistant\` events, ` +
    `batches of 100 (ingest) and 10 (latency).\n`,
)
say(markdownTable(['', 'PGlite', 'Postgres', 'target'], rows))
for (const note of notes) say(`\n${note}`)
say(`\n(total ${ms(performance.now() - t0, 0)})`)
