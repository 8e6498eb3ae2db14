// Benchmark of several replicas on one PostgreSQL: worker-event ingest with 1, 2 and 3 replicas,
// the latency of a listener on one replica for events posted to another, how long a killed
// replica's turn takes to resume elsewhere, and how long the broker takes to serve again after a
// Postgres restart. It starts its own throwaway cluster (never the machine's server) and broker
// processes on loopback. Prints figures and a markdown table; asserts nothing.
//
//   npx bun scripts/bench/replicas.ts [--seconds 5] [--writers 8] [--rounds 3]
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startWorkerControl } from '../../src/testing/worker-control.ts'
import { TEST_SECRET } from '../../test/helpers/broker.ts'
import { spawnBroker, type BrokerProcess } from '../../test/helpers/broker-process.ts'
import { startPgCluster, type PgCluster } from '../../test/helpers/pg-cluster.ts'
import { tempDir, type TempDir } from '../../test/helpers/temp-dir.ts'
import { newSessionId, scenario, scenarioClaudeBin } from '../../test/helpers/turns.ts'
import { markdownTable, ms, percentiles, rate } from './stats.ts'

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    writers: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
  },
})
const seconds = Number(args.seconds)
const writers = Number(args.writers)
const rounds = Number(args.rounds)
const pad = 'x'.repeat(900)

async function replicas(
  pg: PgCluster,
  dir: TempDir,
  n: number,
  extra: Record<string, string> = {},
) {
  const out: BrokerProcess[] = []
  for (let i = 0; i < n; i++)
    out.push(
      await spawnBroker({
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: dir.path,
        CCBROKER_PORT: '0',
        CCBROKER_DATA_DIR: join(dir.path, `r${i}-${crypto.randomUUID().slice(0, 6)}`),
        CCBROKER_DATABASE_URL: pg.url,
        CCBROKER_JWT_SECRET: TEST_SECRET,
        CCBROKER_LOG_LEVEL: 'info',
        ...extra,
      }),
    )
  return out
}

async function bridged(b: BrokerProcess) {
  const s = await b.api('POST', '/v1/sessions', { workspace_id: 'ws-bench' })
  const id = s.body.session.id as string
  const br = await b.api('POST', `/v1/sessions/${id}/bridge`)
  return { id, token: br.body.worker_jwt as string, epoch: br.body.worker_epoch as number }
}

const post = (url: string, s: { id: string; token: string; epoch: number }, events: unknown[]) =>
  fetch(`${url}/v1/sessions/${s.id}/worker/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${s.token}` },
    body: JSON.stringify({ worker_epoch: s.epoch, events }),
  }).then((r) => r.status)

const batch = (n: number) =>
  Array.from({ length: n }, () => ({
    payload: { type: 'assistant', uuid: crypto.randomUUID(), message: { content: pad } },
  }))

/** Events/s through `n` replicas: `writers` loops of 100-event batches, one session each. */
async function ingest(pg: PgCluster, dir: TempDir, n: number) {
  const brokers = await replicas(pg, dir, n)
  try {
    const sessions = await Promise.all(
      Array.from({ length: writers }, (_, i) => bridged(brokers[i % n]!)),
    )
    let events = 0
    const until = Date.now() + seconds * 1000
    await Promise.all(
      sessions.map(async (s, i) => {
        for (let k = 0; Date.now() < until; k++)
          if ((await post(brokers[(i + k) % n]!.url, s, batch(100))) === 200) events += 100
      }),
    )
    return events / seconds
  } finally {
    for (const b of brokers) await b[Symbol.asyncDispose]()
  }
}

/** POST 200 on replica 1 → frame on a listener of replica 0, for 200 single events. */
async function crossLatency(pg: PgCluster, dir: TempDir) {
  const [a, b] = (await replicas(pg, dir, 2)) as [BrokerProcess, BrokerProcess]
  try {
    const s = await bridged(b)
    const res = await fetch(`${a.url}/v1/sessions/${s.id}/events/stream`)
    const reader = res.body!.getReader()
    const seen = new Map<string, number>()
    void (async () => {
      const decoder = new TextDecoder()
      let buf = ''
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return
        buf += decoder.decode(value, { stream: true })
        for (const m of buf.matchAll(/"event_id":"([^"]+)"/g))
          if (!seen.has(m[1]!)) seen.set(m[1]!, performance.now())
        buf = buf.slice(Math.max(0, buf.lastIndexOf('\n\n')))
      }
    })()
    const lat: number[] = []
    for (let i = 0; i < 200; i++) {
      const events = batch(1)
      await post(b.url, s, events)
      const acked = performance.now()
      const id = events[0]!.payload.uuid
      while (!seen.has(id)) await Bun.sleep(0)
      lat.push(seen.get(id)! - acked)
    }
    await reader.cancel()
    return percentiles(lat, [50, 99, 100])
  } finally {
    await a[Symbol.asyncDispose]()
    await b[Symbol.asyncDispose]()
  }
}

/** kill -9 of the replica running a turn (under another host name) → its worker on the other. */
async function recovery(pg: PgCluster, dir: TempDir) {
  await using control = await startWorkerControl()
  const extra = {
    CCBROKER_CLAUDE_BIN: await scenarioClaudeBin(dir.path),
    CCBROKER_WORKSPACE_DIR: join(dir.path, 'workspaces'),
    CCBROKER_WORKER_ENV: `FAKE_CLAUDE_CONTROL_URL=${control.url}`,
  }
  const elsewhere =
    process.getuid?.() === 0
      ? ['unshare', '--uts', 'sh', '-c', 'hostname cc-broker-elsewhere && exec "$@"', 'sh']
      : undefined
  const a = await spawnBroker(
    {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir.path,
      CCBROKER_PORT: '0',
      CCBROKER_DATA_DIR: join(dir.path, `dying-${crypto.randomUUID().slice(0, 6)}`),
      CCBROKER_DATABASE_URL: pg.url,
      CCBROKER_JWT_SECRET: TEST_SECRET,
      CCBROKER_LOG_LEVEL: 'info',
      ...extra,
    },
    { prefix: elsewhere },
  )
  const [b] = (await replicas(pg, dir, 1, extra)) as [BrokerProcess]
  try {
    const sessionId = newSessionId('bench')
    const held = control.hold(sessionId)
    await a.api('POST', '/api/v2/turns', {
      session_id: sessionId,
      workspace_id: 'ws-bench',
      user_message: 'x',
      metadata: scenario('control'),
    })
    await held.arrived
    const again = control.hold(sessionId)
    const killed = performance.now()
    await a.kill()
    await again.arrived
    const took = performance.now() - killed
    again.release()
    return took
  } finally {
    await a[Symbol.asyncDispose]()
    await b[Symbol.asyncDispose]()
  }
}

/** A fast restart with one writer going: Postgres ready → the next 2xx. */
async function restart(pg: PgCluster, dir: TempDir) {
  const [a] = (await replicas(pg, dir, 1)) as [BrokerProcess]
  try {
    const s = await bridged(a)
    let stop = false
    const acks: number[] = []
    const writer = (async () => {
      while (!stop)
        if ((await post(a.url, s, batch(10)).catch(() => 0)) === 200) acks.push(performance.now())
    })()
    await Bun.sleep(500)
    await pg.restart('fast')
    const back = performance.now()
    while (!acks.some((t) => t > back)) await Bun.sleep(5)
    stop = true
    await writer
    return acks.find((t) => t > back)! - back
  } finally {
    await a[Symbol.asyncDispose]()
  }
}

await using pg = await startPgCluster()
await using dir = await tempDir('ccb-bench-rep-')
const rows: string[][] = []
for (const n of [1, 2, 3]) {
  const figures: number[] = []
  for (let r = 0; r < rounds; r++) figures.push(await ingest(pg, dir, n))
  const [median] = percentiles(figures, [50])
  console.log(`ingest, ${n} replica(s): ${figures.map((f) => rate(f)).join(', ')}`)
  rows.push([`ingest, ${n} replica${n > 1 ? 's' : ''}, ${writers} sessions`, rate(median!)])
}
const [p50, p99, max] = await crossLatency(pg, dir)
rows.push([
  'listener latency across replicas p50 / p99 / max',
  `${ms(p50!)} / ${ms(p99!)} / ${ms(max!)}`,
])
const recoveries: number[] = []
for (let r = 0; r < rounds; r++) recoveries.push(await recovery(pg, dir))
rows.push([
  'kill -9 → the turn running on another replica (median)',
  ms(percentiles(recoveries, [50])[0]!, 0),
])
const restarts: number[] = []
for (let r = 0; r < rounds; r++) restarts.push(await restart(pg, dir))
rows.push(['Postgres fast restart → next 2xx (median)', ms(percentiles(restarts, [50])[0]!, 0)])
console.log(
  `recovery: ${recoveries.map((v) => ms(v, 0)).join(', ')}; restart: ${restarts.map((v) => ms(v, 0)).join(', ')}`,
)
console.log(markdownTable(['measure', 'value'], rows))
