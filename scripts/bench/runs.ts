// Ingest runs (through the broker and straight into the table) and PGlite start-up.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startLoadMeter, type Load } from './machine.ts'
import { eventsBody, payloads, uuidPrefix } from './payloads.ts'
import { percentiles } from './stats.ts'
import { createBenchSession, type RawRow, type Target } from './targets.ts'

const BATCH = 100

export interface IngestResult {
  events: number
  wallMs: number
  eventsPerSec: number
  /** Per request (one batch of 100): p50, p99, max. */
  requestMs: number[]
  failures: number
  failureSample: string
  stored: number
  /** How busy the machine was during the run, and how much of that was not us. */
  load: Load | null
}

/** `events` split into batches of 100, dealt round-robin to the sessions (index b → b % n). */
function deal<T>(
  events: number,
  sessions: number,
  make: (first: number, count: number, s: number) => T,
) {
  const out: T[][] = Array.from({ length: sessions }, () => [])
  for (let b = 0; b * BATCH < events; b++)
    out[b % sessions]!.push(make(b * BATCH, Math.min(BATCH, events - b * BATCH), b % sessions))
  return out
}

/** Each session's batches one after another; the sessions side by side. */
async function drive<T>(
  target: Target,
  work: T[][],
  send: (item: T, s: number) => Promise<string | null>,
) {
  const requestMs: number[] = []
  let failures = 0
  let failureSample = ''
  const meter = startLoadMeter(await target.backendPids())
  const t0 = performance.now()
  await Promise.all(
    work.map(async (items, s) => {
      for (const item of items) {
        const t = performance.now()
        const failure = await send(item, s)
        requestMs.push(performance.now() - t)
        if (failure) {
          failures++
          failureSample ||= failure
        }
      }
    }),
  )
  const wallMs = performance.now() - t0
  const load = meter(await target.backendPids())
  return {
    wallMs,
    requestMs: percentiles(requestMs, [50, 99, 100]),
    failures,
    failureSample,
    load,
  }
}

const storedCount = async (target: Target) =>
  Number((await target.query('select count(*)::int as n from session_events'))[0]?.n)

/** POST /v1/sessions/:id/worker/events, `sessions` workers with one request in flight each. */
export async function brokerIngest(
  target: Target,
  sessions: number,
  events: number,
): Promise<IngestResult> {
  await target.reset()
  const ss = await Promise.all(
    Array.from({ length: sessions }, () => createBenchSession(target.broker.url)),
  )
  const prefix = uuidPrefix()
  const work = deal(events, sessions, (first, count, s) =>
    eventsBody(ss[s]!.epoch, payloads(prefix, first, count, ss[s]!.claudeSessionId)),
  )
  const headers = ss.map((s) => ({
    authorization: `Bearer ${s.token}`,
    'content-type': 'application/json',
    'anthropic-version': '2023-06-01',
  }))
  const run = await drive(target, work, async (body, s) => {
    const res = await fetch(ss[s]!.eventsUrl, { method: 'POST', headers: headers[s], body })
    const text = await res.text()
    return res.status === 200 ? null : `HTTP ${res.status} ${text.slice(0, 200)}`
  })
  return {
    events,
    ...run,
    eventsPerSec: (events / run.wallMs) * 1000,
    stored: await storedCount(target),
  }
}

/** The same rows by multi-row INSERT straight into session_events, `sessions` in parallel. */
export async function rawIngest(
  target: Target,
  sessions: number,
  events: number,
): Promise<IngestResult> {
  await target.reset()
  const ss = await Promise.all(
    Array.from({ length: sessions }, () => createBenchSession(target.broker.url)),
  )
  const prefix = uuidPrefix()
  const work = deal(events, sessions, (first, count, s) =>
    payloads(prefix, first, count, ss[s]!.claudeSessionId).map((payload): RawRow => ({
      sessionId: ss[s]!.id,
      payload,
    })),
  )
  const run = await drive(target, work, async (rows) => {
    try {
      await target.rawInsert(rows)
      return null
    } catch (err) {
      return String((err as Error).message)
    }
  })
  return {
    events,
    ...run,
    eventsPerSec: (events / run.wallMs) * 1000,
    stored: await storedCount(target),
  }
}

export interface ColdStart {
  startMs: number
  sinceProcessStartMs: number
  rssBytes: number
}

/** PGlite startBroker in a fresh process: on an empty data dir, then `restarts` times on it. */
export async function pgliteColdStart(restarts: number, srcDir: string) {
  const dir = await mkdtemp(join(tmpdir(), 'ccb-bench-cold-'))
  const once = async (): Promise<ColdStart> => {
    const script = new URL('./cold-start.ts', import.meta.url).pathname
    const proc = Bun.spawn([process.execPath, script, dir, srcDir], {
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const [out, err, code] = await Promise.all([
      proc.stdout.text(),
      proc.stderr.text(),
      proc.exited,
    ])
    if (code !== 0) throw new Error(`cold-start.ts exited with ${code}: ${err.slice(-500)}`)
    return JSON.parse(out.trim().split('\n').at(-1)!) as ColdStart
  }
  try {
    const fresh = await once()
    const existing: ColdStart[] = []
    for (let i = 0; i < restarts; i++) existing.push(await once())
    return { fresh, existing }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
