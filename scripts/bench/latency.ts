// Listener latency: SSE listeners in one child process, a steady producer in another, the broker
// in this one; receipt and ack times compared on one timeline (children.ts).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnChild } from './children.ts'
import { startLoadMeter, type Load } from './machine.ts'
import { uuidPrefix } from './payloads.ts'
import { percentiles } from './stats.ts'
import { createBenchSession, type Target } from './targets.ts'

export interface LatencyResult {
  listeners: number
  /** Events sent (fewer than planned when the producer hit its deadline). */
  events: number
  planned: number
  /** Events per second the producer achieved, and how late its worst batch left. */
  achievedRate: number
  producerMaxLateMs: number
  producerFailures: string[]
  /** POST 200 → receipt, over every (event, listener) pair: p50, p99, max, min. */
  fromAckMs: number[]
  /** POST sent → receipt (includes the append itself): p50, p99, max. */
  fromSendMs: number[]
  /** The producer's POSTs, sent → 200: p50, p99, max. */
  postMs: number[]
  /** Events each listener received: min, max. */
  receivedRange: [number, number]
  missing: number
  clockErrorMs: number
  listenerStats: Record<string, number>
  /** CPU of each process over the measured phase, % of one core. */
  cpuPercent: { broker: number; listeners: number; producer: number }
  /** How busy the machine was during the measured phase, and how much of that was not us. */
  load: Load | null
}

/** Listeners in one child process, the producer in another; the broker stays in this one. */
export async function listenerLatency(
  target: Target,
  o: { listeners: number; rate: number; seconds: number; batchSize: number },
): Promise<LatencyResult> {
  await target.reset()
  const s = await createBenchSession(target.broker.url)
  const intervalMs = (1000 * o.batchSize) / o.rate
  const batches = Math.round((o.rate * o.seconds) / o.batchSize)
  const events = batches * o.batchSize
  const prefix = uuidPrefix()
  const warmPrefix = uuidPrefix()
  const dir = await mkdtemp(join(tmpdir(), 'ccb-bench-lat-'))
  try {
    await using listeners = await spawnChild('./sse-listeners.ts')
    await using producer = await spawnChild('./producer.ts')
    listeners.send({
      type: 'open',
      url: s.streamUrl,
      listeners: o.listeners,
      events,
      prefix,
      warmPrefix,
      warmEvents: 100,
    })
    await listeners.next('ready')
    const run = {
      type: 'run',
      url: s.eventsUrl,
      token: s.token,
      epoch: s.epoch,
      claudeSessionId: s.claudeSessionId,
    }
    // Up to 8 batches in flight: the producer measures what the broker can take, not one
    // worker's round trip (appends to one session serialize on its row lock anyway).
    const deadlineMs = o.seconds * 1000 * 1.5
    const common = { batchSize: o.batchSize, intervalMs, maxInFlight: 8, deadlineMs }
    // Warm-up: 100 events at the same rate, until every listener has them all (not measured).
    producer.send({ ...run, ...common, prefix: warmPrefix, batches: Math.ceil(100 / o.batchSize) })
    await producer.next('ran')
    await listeners.next('warm', 30_000)
    const cpu0 = process.cpuUsage()
    const children = [listeners.proc.pid, producer.proc.pid]
    const meter = startLoadMeter([...children, ...(await target.backendPids())])
    const wall0 = performance.now()
    producer.send({ ...run, ...common, prefix, batches })
    type Ran = {
      sent: number
      sentAt: number[]
      ackAt: number[]
      failures: string[]
      maxLateMs: number
      elapsedMs: number
      cpuMs: number
    }
    const ran = await producer.next<{ type: string } & Ran>('ran', o.seconds * 1000 + 120_000)
    const outFile = join(dir, 'receipts.f64')
    const sent = ran.sent * o.batchSize
    listeners.send({ type: 'finish', waitMs: 10_000, outFile, events: sent })
    const done = await listeners.next<{ type: string; counts: number[] } & Record<string, number>>(
      'done',
      60_000,
    )
    const cpu = process.cpuUsage(cpu0)
    const wallMs = performance.now() - wall0
    const load = meter(await target.backendPids())
    const receipts = new Float64Array(await Bun.file(outFile).arrayBuffer())

    const lo = listeners.clock.offsetMs
    const po = producer.clock.offsetMs
    const fromAck = new Float64Array(receipts.length)
    const fromSend = new Float64Array(receipts.length)
    let n = 0
    for (let l = 0; l < o.listeners; l++)
      for (let e = 0; e < sent; e++) {
        const got = receipts[l * events + e]!
        const b = Math.floor(e / o.batchSize)
        const ack = ran.ackAt[b]!
        if (Number.isNaN(got) || Number.isNaN(ack)) continue
        fromAck[n] = got - lo - (ack - po)
        fromSend[n++] = got - lo - (ran.sentAt[b]! - po)
      }
    const acks = fromAck.subarray(0, n)
    const [min] = percentiles(acks, [0])
    const { type: _t, counts, cpuMs, ...listenerStats } = done
    const share = (cpuMs: number) => Math.round((cpuMs / wallMs) * 100)
    return {
      listeners: o.listeners,
      events: sent,
      planned: events,
      achievedRate: (sent / ran.elapsedMs) * 1000,
      producerMaxLateMs: ran.maxLateMs,
      producerFailures: ran.failures,
      fromAckMs: [...percentiles(acks, [50, 99, 100]), min!],
      fromSendMs: percentiles(fromSend.subarray(0, n), [50, 99, 100]),
      postMs: percentiles(
        ran.ackAt.map((a, b) => a - ran.sentAt[b]!).filter((v) => !Number.isNaN(v)),
        [50, 99, 100],
      ),
      receivedRange: [Math.min(...counts), Math.max(...counts)],
      missing: o.listeners * sent - n,
      clockErrorMs: (listeners.clock.rttMs + producer.clock.rttMs) / 2,
      listenerStats,
      cpuPercent: {
        broker: share((cpu.user + cpu.system) / 1000),
        listeners: share(cpuMs!),
        producer: share(ran.cpuMs),
      },
      load,
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
