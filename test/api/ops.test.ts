import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { chmod } from 'node:fs/promises'
import { sql } from 'drizzle-orm'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { databases } from '../helpers/databases.ts'
import { openSse } from '../helpers/sse.ts'
import {
  captureLog,
  newSessionId,
  scenario,
  startTurnBroker,
  type TurnBroker,
} from '../helpers/turns.ts'
import { until } from '../helpers/until.ts'

/**
 * GET /metrics parsed: each family's type, and every series (a histogram's `_bucket`, `_sum`
 * and `_count` too, as Prometheus stores them) with its labels. The parser folds a labelled
 * histogram's series into one, so the series are read from a second parse that declares the
 * histograms untyped.
 */
async function scrape(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/metrics`, { headers })
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toStartWith('text/plain; version=0.0.4')
  const text = await res.text()
  const types = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f.type]))
  const series = parsePrometheusTextFormat(text.replace(/^(# TYPE \S+) histogram$/gm, '$1 untyped'))
  // The series of one histogram come interleaved, as several families of one name.
  const byName = new Map<string, (typeof series)[number]['metrics']>()
  for (const f of series) byName.set(f.name, [...(byName.get(f.name) ?? []), ...f.metrics])
  return { types, series: byName }
}
type Scraped = Awaited<ReturnType<typeof scrape>>

/** The value of the series `name` with exactly these labels (0 when it has none yet). */
const valueOf = (m: Scraped, name: string, labels: Record<string, string> = {}) => {
  const samples = m.series.get(name)
  expect(samples).toBeDefined()
  const sample = samples!.find((s) => JSON.stringify(s.labels ?? {}) === JSON.stringify(labels))
  return Number(sample?.value ?? 0)
}
/** A histogram's observations, summed over its series whose labels include `labels`. */
const countOf = (m: Scraped, name: string, labels: Record<string, string> = {}) => {
  expect(m.types.get(name)).toBe('HISTOGRAM')
  return (m.series.get(`${name}_count`) ?? [])
    .filter((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v))
    .reduce((n, s) => n + Number(s.value), 0)
}

describe('metrics, readiness and the access log', () => {
  const capture = captureLog()
  let b: TurnBroker
  beforeAll(async () => {
    b = await startTurnBroker({ db: databases()[0]!, transport: 'stdio', log: capture.log })
  })
  afterAll(() => b.stop())

  test('/metrics after a few turns counts them, their events, syncs and requests as the broker stored them', async () => {
    const sessionId = newSessionId()
    const enqueue = (text: string, metadata = {}) =>
      b.enqueue({ session_id: sessionId, workspace_id: 'ws-metrics', user_message: text, metadata })
    for (const text of ['one', 'two']) await b.waitState((await enqueue(text)).turn_id, ['done'])
    await b.waitState((await enqueue('boom', scenario('crash'))).turn_id, ['failed'])

    // One turn held on its worker and one queued behind it; a listener on the session's stream.
    const held = b.control.hold(sessionId)
    const running = await enqueue('held')
    await held.arrived
    const queued = await enqueue('behind')
    await using listener = await openSse(`${b.url}/v1/sessions/${sessionId}/events/stream`)
    const busy = await scrape(b.url)
    expect(valueOf(busy, 'ccbroker_workers_running')).toBe(1)
    expect(valueOf(busy, 'ccbroker_queue_depth')).toBe(1)
    expect(valueOf(busy, 'ccbroker_sse_listeners')).toBe(1)
    held.release({ reply: 'released' })
    await b.waitState(running.turn_id, ['done'])
    await b.waitState(queued.turn_id, ['done'])
    listener.close()

    const m = await scrape(b.url)
    expect(valueOf(m, 'ccbroker_turns_total', { state: 'done' })).toBe(4)
    expect(valueOf(m, 'ccbroker_turns_total', { state: 'failed' })).toBe(1)
    expect(countOf(m, 'ccbroker_turn_duration_seconds')).toBe(5)
    expect(countOf(m, 'ccbroker_turn_duration_seconds', { state: 'failed' })).toBe(1)
    expect(countOf(m, 'ccbroker_turn_queue_wait_seconds')).toBe(5)
    expect(valueOf(m, 'ccbroker_queue_depth')).toBe(0)
    expect(valueOf(m, 'ccbroker_workers_running')).toBe(0)
    // The session's worker waits for its next turn.
    expect(valueOf(m, 'ccbroker_workers_idle')).toBe(1)

    // Events by source: exactly what the session's log holds.
    const log = (await b.api('GET', `/v1/sessions/${sessionId}/events?limit=1000`)).body
      .data as any[]
    for (const source of ['client', 'worker', 'broker'])
      expect(valueOf(m, 'ccbroker_events_appended_total', { source })).toBe(
        log.filter((e) => e.source === source).length,
      )
    const pushes = log.filter((e) => e.event_type === 'workspace_pushed').length
    // A pull per worker process started (a warm one serves several turns), a push per turn.
    const pulls = log.filter((e) => e.event_type === 'workspace_pulled').length
    expect(pulls).toBeGreaterThanOrEqual(1)
    expect(
      countOf(m, 'ccbroker_workspace_sync_seconds', { direction: 'pull', store: 'local' }),
    ).toBe(pulls)
    expect(
      countOf(m, 'ccbroker_workspace_sync_seconds', { direction: 'push', store: 'local' }),
    ).toBe(pushes)
    expect(pushes).toBeGreaterThanOrEqual(4)

    // Requests by route template, not by path.
    expect(
      valueOf(m, 'ccbroker_http_requests_total', {
        route: '/api/v2/turns',
        method: 'POST',
        status: '202',
      }),
    ).toBe(5)
    expect(
      valueOf(m, 'ccbroker_http_requests_total', {
        route: '/api/turns/:id',
        method: 'GET',
        status: '200',
      }),
    ).toBeGreaterThanOrEqual(5)
    expect(
      countOf(m, 'ccbroker_http_request_duration_seconds', {
        route: '/api/v2/turns',
        method: 'POST',
      }),
    ).toBe(5)
    // And the process defaults.
    expect(valueOf(m, 'process_resident_memory_bytes')).toBeGreaterThan(0)
  })

  test('a worker that cannot start is counted', async () => {
    const before = valueOf(await scrape(b.url), 'ccbroker_worker_spawn_failures_total')
    await chmod(b.config.claudeBin!, 0o644)
    try {
      const t = await b.enqueue({
        session_id: newSessionId(),
        workspace_id: 'ws-m',
        user_message: 'x',
      })
      expect((await b.waitState(t.turn_id, ['failed'])).error).toContain('worker could not start')
    } finally {
      await chmod(b.config.claudeBin!, 0o755)
    }
    expect(valueOf(await scrape(b.url), 'ccbroker_worker_spawn_failures_total')).toBe(before + 1)
  })

  test('an access log line per request: method, route, status, ms and the session', async () => {
    const sessionId = newSessionId()
    capture.records.length = 0
    await b.api('GET', `/v1/sessions/${sessionId}`)
    await b.api('GET', '/healthz')
    // Lines are written once a response is sent: a scrape of the test before may come late.
    const lines = await until(() => {
      const http = capture.records.filter(
        (r) => r.msg === 'http' && (r.route === '/healthz' || r.route === '/v1/sessions/:id'),
      )
      return http.length >= 2 ? http : null
    })
    expect(lines[0]).toMatchObject({
      level: 'info',
      method: 'GET',
      route: '/v1/sessions/:id',
      status: 404,
      ms: expect.any(Number),
      sessionId,
    })
    expect(lines[1]).toMatchObject({ route: '/healthz', status: 200 })
    expect(lines[1]!.sessionId).toBeUndefined()
  })

  test('/readyz: ready, then 503 with the reason when a migration is missing', async () => {
    expect(await b.api('GET', '/readyz')).toMatchObject({ status: 200, body: { status: 'ready' } })
    const db = b.broker.database.db
    const last = (await db.execute(
      sql`select id, hash, created_at from drizzle.__drizzle_migrations order by id desc limit 1`,
    )) as any
    const row = (Array.isArray(last) ? last : last.rows)[0]
    await db.execute(sql`delete from drizzle.__drizzle_migrations where id = ${row.id}`)
    try {
      const res = await b.api('GET', '/readyz')
      expect(res.status).toBe(503)
      expect(res.body.error).toContain('migrations not applied: 0')
      // Liveness is another question: the process is fine.
      expect((await b.api('GET', '/healthz')).status).toBe(200)
    } finally {
      await db.execute(
        sql`insert into drizzle.__drizzle_migrations (id, hash, created_at) values (${row.id}, ${row.hash}, ${row.created_at})`,
      )
    }
    expect((await b.api('GET', '/readyz')).status).toBe(200)
  })
})

describe('/metrics access and a stopping broker', () => {
  test('behind the API keys unless CCBROKER_METRICS_PUBLIC; the rest of the API stays behind them', async () => {
    await using keyed = await startTurnBroker({
      db: databases()[0]!,
      transport: 'stdio',
      env: { CCBROKER_API_KEYS: 'key-ops-0123456789' },
    })
    expect((await fetch(`${keyed.url}/metrics`)).status).toBe(401)
    await scrape(keyed.url, { authorization: 'Bearer key-ops-0123456789' })
    await using open = await startTurnBroker({
      db: databases()[0]!,
      transport: 'stdio',
      env: { CCBROKER_API_KEYS: 'key-ops-0123456789', CCBROKER_METRICS_PUBLIC: '1' },
    })
    await scrape(open.url)
    expect((await fetch(`${open.url}/v1/sessions`)).status).toBe(401)
  })

  test('CCBROKER_ACCESS_LOG=off writes no access lines', async () => {
    const capture = captureLog()
    await using quiet = await startTurnBroker({
      db: databases()[0]!,
      transport: 'stdio',
      env: { CCBROKER_ACCESS_LOG: 'off' },
      log: capture.log,
    })
    await quiet.api('GET', '/healthz')
    await quiet.api('GET', '/v1/sessions')
    expect(capture.records.filter((r) => r.msg === 'http')).toEqual([])
  })

  test('/readyz answers 503 while the broker hands its turns back on stop', async () => {
    const b = await startTurnBroker({ db: databases()[0]!, transport: 'stdio' })
    const t = await b.enqueue({
      session_id: newSessionId(),
      workspace_id: 'ws-stop',
      user_message: 'stay',
      metadata: scenario('stubborn'),
    })
    await b.waitState(t.turn_id, ['running'])
    expect((await b.api('GET', '/readyz')).status).toBe(200)
    const stopping = b.stop()
    const res = await until(async () => {
      const r = await b.api('GET', '/readyz').catch(() => null)
      return r?.status === 503 ? r : null
    })
    expect(res.body.error).toContain('shutting down')
    await stopping
  })
})
