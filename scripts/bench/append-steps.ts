// Where the time of one worker-events POST goes: the append transaction of events/log.ts taken
// apart step by step (same repo functions, same order, timed one by one), next to variants of
// its INSERT, the HTTP layer alone, and the whole POST. One session, one request at a time, so
// nothing waits on a lock: these are the costs of a single append.
//
//   bun scripts/bench/append-steps.ts [--batches 200] [--size 100] [--only pglite,postgres]
import { sql } from 'drizzle-orm'
import { parseArgs } from 'node:util'
import type { Db } from '../../src/db/handle.ts'
import { appendEvents, insertEvents, maxEventSeq } from '../../src/db/repos/events.ts'
import { lockSession } from '../../src/db/repos/sessions.ts'
import { sessionEvents } from '../../src/db/schema.ts'
import { NOTIFY_CHANNEL } from '../../src/events/log.ts'
import { backgroundBusy } from './machine.ts'
import { eventsBody, payloads, uuidPrefix } from './payloads.ts'
import { markdownTable, percentiles } from './stats.ts'
import { createBenchSession, pgliteTarget, postgresTarget, type Target } from './targets.ts'

const { values: args } = parseArgs({
  options: {
    batches: { type: 'string', default: '200' },
    size: { type: 'string', default: '100' },
    only: { type: 'string', default: 'pglite,postgres' },
  },
})
const batches = Number(args.batches)
const size = Number(args.size)
const adminUrl =
  process.env.CCBROKER_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'

type Steps = Map<string, number[]>
const notifyPayload = (sessionId: string, rows: { seq: number }[]) =>
  JSON.stringify({ s: sessionId, l: rows.at(-1)!.seq })
const time = async <T>(steps: Steps, name: string, f: () => Promise<T> | T): Promise<T> => {
  const t = performance.now()
  const out = await f()
  const list = steps.get(name) ?? steps.set(name, []).get(name)!
  list.push(performance.now() - t)
  return out
}

async function measure(target: Target) {
  const db = target.broker.database.db as Db
  const s = await createBenchSession(target.broker.url)
  const steps: Steps = new Map()
  const rowsOf = (prefix: string, b: number) =>
    payloads(prefix, b * size, size, s.claudeSessionId).map((payload) => ({
      sessionId: s.id,
      eventId: payload.uuid,
      eventType: payload.type,
      source: 'worker',
      epoch: s.epoch,
      payload: payload as Record<string, unknown>,
      ephemeral: false,
      turnId: null,
    }))
  const conflict = { target: [sessionEvents.sessionId, sessionEvents.eventId] }
  const narrow = {
    seq: sessionEvents.seq,
    eventId: sessionEvents.eventId,
    createdAt: sessionEvents.createdAt,
  }
  const headers = { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' }
  for (const warm of [true, false]) {
    const n = warm ? 20 : batches
    const prefix = uuidPrefix()
    for (let b = 0; b < n; b++) {
      const st: Steps = warm ? new Map() : steps
      const rows = rowsOf(prefix, b)
      // The append of events/log.ts, step by step.
      await time(st, 'a. drizzle builds the INSERT (toSQL, not run)', () =>
        db
          .insert(sessionEvents)
          .values(rowsOf(uuidPrefix(), 0))
          .onConflictDoNothing(conflict)
          .returning()
          .toSQL(),
      )
      const t0 = performance.now()
      let tCommit = 0
      await db.transaction(async (tx) => {
        const t = tx as unknown as Db
        ;(st.get('b. BEGIN') ?? st.set('b. BEGIN', []).get('b. BEGIN')!).push(
          performance.now() - t0,
        )
        await time(st, 'c. lock session (select … for update)', () => lockSession(t, s.id))
        await time(st, 'd. max(seq)', () => maxEventSeq(t, s.id))
        const inserted = await time(st, 'e. INSERT … RETURNING * (build + run + map)', () =>
          insertEvents(t, rows),
        )
        if (target.name === 'Postgres')
          await time(st, 'f. pg_notify', () =>
            t.execute(sql`select pg_notify(${NOTIFY_CHANNEL}, ${notifyPayload(s.id, inserted)})`),
          )
        tCommit = performance.now()
      })
      ;(st.get('g. COMMIT') ?? st.set('g. COMMIT', []).get('g. COMMIT')!).push(
        performance.now() - tCommit,
      )
      ;(
        st.get('= append transaction') ??
        st.set('= append transaction', []).get('= append transaction')!
      ).push(performance.now() - t0)
      // Variants of the INSERT alone (fresh rows each, outside a transaction).
      await time(st, 'v1. INSERT … RETURNING seq, event_id, created_at', () =>
        db
          .insert(sessionEvents)
          .values(rowsOf(uuidPrefix(), b))
          .onConflictDoNothing(conflict)
          .returning(narrow),
      )
      await time(st, 'v2. INSERT, no RETURNING', () =>
        db.insert(sessionEvents).values(rowsOf(uuidPrefix(), b)).onConflictDoNothing(conflict),
      )
      const raw = rowsOf(uuidPrefix(), b).map((r) => ({
        sessionId: r.sessionId,
        payload: r.payload as never,
      }))
      await time(st, 'v3. INSERT by the driver itself (raw ceiling)', () => target.rawInsert(raw))
      // What events/log.ts does now: lock, fence, max(seq), insert and NOTIFY in one statement.
      const one = rowsOf(uuidPrefix(), b)
      await time(st, 'v4. the one-statement append (appendEvents)', () =>
        appendEvents(target.broker.database.query, {
          sessionId: s.id,
          source: 'worker',
          epoch: s.epoch,
          turnId: null,
          rows: one.map((r) => ({ ...r, attempt: null })),
          notify: target.name === 'Postgres' ? { channel: NOTIFY_CHANNEL, origin: 'bench' } : null,
        }),
      )
      // The HTTP layer alone: a worker_epoch that is not the token's is refused (409) after
      // parsing, validation and the JWT, before any database work.
      const body = eventsBody(s.epoch + 1, payloads(uuidPrefix(), 0, size, s.claudeSessionId))
      await time(st, 'h. POST refused before the database (409)', async () => {
        const res = await fetch(s.eventsUrl, { method: 'POST', headers, body })
        if (res.status !== 409) throw new Error(`expected 409, got ${res.status}`)
        await res.text()
      })
      const ok = eventsBody(s.epoch, payloads(uuidPrefix(), 0, size, s.claudeSessionId))
      await time(st, '= whole POST (200)', async () => {
        const res = await fetch(s.eventsUrl, { method: 'POST', headers, body: ok })
        if (res.status !== 200)
          throw new Error(`expected 200, got ${res.status}: ${await res.text()}`)
        await res.text()
      })
    }
  }
  return steps
}

const results = new Map<string, Steps>()
const busy = await backgroundBusy()
console.log(
  `append steps: ${batches} batches of ${size} ~1 KB events;` +
    ` machine ${busy ?? '?'}% busy before start`,
)
if (args.only.includes('pglite')) {
  await using target = await pgliteTarget()
  results.set('PGlite', await measure(target))
}
if (args.only.includes('postgres')) {
  await using target = await postgresTarget(adminUrl, 1, (reason) =>
    console.log(`Postgres skipped: ${reason}`),
  )
  if (target) results.set('Postgres', await measure(target))
}
const names = [...new Set([...results.values()].flatMap((m) => [...m.keys()]))].sort()
const cell = (v: number[] | undefined) => {
  if (!v) return '—'
  const [p50, p99] = percentiles([...v], [50, 99])
  return `${p50!.toFixed(2)} / ${p99!.toFixed(2)}`
}
console.log()
console.log(
  markdownTable(
    ['step (ms, p50 / p99)', ...results.keys()],
    names.map((n) => [n, ...[...results.values()].map((m) => cell(m.get(n)))]),
  ),
)
