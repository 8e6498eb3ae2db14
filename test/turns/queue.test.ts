import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { databases } from '../helpers/databases.ts'
import {
  newSessionId,
  scenario,
  startReplica,
  startTurnBroker,
  TRANSPORTS,
  workerOf,
  type TurnBroker,
} from '../helpers/turns.ts'

const cases = databases().flatMap((db) => TRANSPORTS.map((transport) => ({ db, transport })))

/** Whether two turns' [started_at, finished_at] intervals overlap. */
const overlaps = (a: Record<string, any>, b: Record<string, any>) =>
  Date.parse(a.started_at) < Date.parse(b.finished_at) &&
  Date.parse(b.started_at) < Date.parse(a.finished_at)

describe.each(cases)('turn queue on $db.name, $transport', ({ db, transport }) => {
  let b: TurnBroker
  beforeAll(async () => {
    // The default limits: 4 workers, 16 waiting turns per session.
    b = await startTurnBroker({ db, transport })
  })
  afterAll(() => b.stop())

  test('one session’s turns run one at a time, in the order they were queued', async () => {
    const sessionId = newSessionId()
    const ids: string[] = []
    for (const text of ['first', 'second', 'third'])
      ids.push(
        (
          await b.enqueue({
            session_id: sessionId,
            workspace_id: 'ws-q',
            user_message: text,
            metadata: scenario('slow', 400),
          })
        ).turn_id,
      )
    const turns = await Promise.all(
      ids.map((id) => b.waitState(id, ['done', 'failed', 'cancelled'])),
    )
    expect(turns.map((t) => [t.state, t.result.result])).toEqual([
      ['done', 'echo: first'],
      ['done', 'echo: second (history: 1)'],
      ['done', 'echo: third (history: 2)'],
    ])
    for (let i = 1; i < turns.length; i++) {
      expect(overlaps(turns[i - 1]!, turns[i]!)).toBe(false)
      expect(Date.parse(turns[i]!.started_at)).toBeGreaterThanOrEqual(
        Date.parse(turns[i - 1]!.finished_at),
      )
    }
    // The log holds them in the same order.
    const events = (await b.api('GET', `/v1/sessions/${sessionId}/events?limit=1000`)).body.data
    const doneOrder = events.filter((e: any) => e.event_type === 'done').map((e: any) => e.turn_id)
    expect(doneOrder).toEqual(ids)
  })

  test('a session with 16 turns waiting refuses the 17th with 429 and Retry-After, and stores nothing', async () => {
    const sessionId = newSessionId()
    const body = (text: string, meta = {}) => ({
      session_id: sessionId,
      workspace_id: 'ws-q',
      user_message: text,
      metadata: meta,
    })
    const running = await b.enqueue(body('hold the session', scenario('hang')))
    // Once it has begun, the hanging worker writes nothing more to the log.
    await b.waitEvent(sessionId, running.turn_id, 'system')
    const waiting: string[] = []
    for (let i = 0; i < 16; i++) waiting.push((await b.enqueue(body(`wait ${i}`))).turn_id)
    const eventsBefore = (await b.api('GET', `/v1/sessions/${sessionId}/events?limit=1000`)).body
      .data

    for (const path of ['/api/v2/turns', '/api/turns']) {
      const refused = await b.api('POST', path, body('one too many'))
      expect(refused).toEqual({
        status: 429,
        headers: expect.any(Headers),
        body: { error: `session ${sessionId} already has 16 turns waiting (limit 16)` },
      })
      expect(refused.headers.get('retry-after')).toBe('5')
      expect(refused.headers.get('content-type')).toStartWith('application/json')
    }
    expect((await b.api('GET', `/v1/sessions/${sessionId}/events?limit=1000`)).body.data).toEqual(
      eventsBefore,
    )
    const listed = (await b.api('GET', `/v1/sessions/${sessionId}/turns?limit=100`)).body.data
    expect(listed.map((t: any) => t.id)).toEqual([running.turn_id, ...waiting].toReversed())

    // Another session is not affected; and a freed place takes the next turn.
    const elsewhere = await b.api('POST', '/api/v2/turns', {
      ...body('x'),
      session_id: newSessionId(),
    })
    expect(elsewhere.status).toBe(202)
    expect((await b.api('POST', `/api/turns/${waiting[15]}/cancel`)).body.turn.state).toBe(
      'cancelled',
    )
    expect((await b.api('POST', '/api/v2/turns', body('now it fits'))).status).toBe(202)
    expect((await b.api('POST', '/api/v2/turns', body('and this not'))).status).toBe(429)

    // Clean up: the waiting turns and the running one are cancelled.
    const queued = (await b.api('GET', `/v1/sessions/${sessionId}/turns?limit=100`)).body.data
      .filter((t: any) => t.state === 'queued')
      .map((t: any) => t.id)
    for (const id of queued) await b.api('POST', `/api/turns/${id}/cancel`)
    expect((await b.api('POST', `/api/turns/${running.turn_id}/cancel`)).body.turn.state).toBe(
      'cancelled',
    )
    expect((await b.waitState(elsewhere.body.turn_id, ['done', 'failed'])).state).toBe('done')
  })

  test('different sessions run side by side up to the worker limit (4); the fifth waits for a free worker', async () => {
    const sessions = Array.from({ length: 5 }, () => newSessionId('par'))
    // Every worker stops at its turn's start until released: four are mid-turn at once.
    const held = sessions.map((sessionId) => b.control.hold(sessionId))
    const ids: string[] = []
    for (const sessionId of sessions)
      ids.push(
        (
          await b.enqueue({
            session_id: sessionId,
            workspace_id: 'ws-q',
            user_message: 'in parallel',
            metadata: scenario('control'),
          })
        ).turn_id,
      )
    await Promise.all(held.slice(0, 4).map((h) => h.arrived))
    // All four workers are busy, so the fifth turn is not claimed: it waits in the queue.
    expect((await b.turn(ids[4]!)).state).toBe('queued')
    const running = await Promise.all(ids.slice(0, 4).map((id) => b.turn(id)))
    expect(running.map((t) => t.state)).toEqual(['running', 'running', 'running', 'running'])

    // One finishes; then the fifth gets its worker.
    held[0]!.release()
    expect((await b.waitState(ids[0]!, ['done', 'failed'])).state).toBe('done')
    await held[4]!.arrived
    for (const h of held.slice(1)) h.release()
    const turns = await Promise.all(ids.map((id) => b.waitState(id, ['done', 'failed'], 60_000)))
    expect(turns.map((t) => t.state)).toEqual(['done', 'done', 'done', 'done', 'done'])
    const [early, late] = [turns.slice(0, 4), turns[4]!]
    for (const a of early) for (const c of early) if (a !== c) expect(overlaps(a, c)).toBe(true)
    expect(Date.parse(late.started_at)).toBeGreaterThanOrEqual(Date.parse(turns[0]!.finished_at))
    // Every worker ran in its own session's directory.
    for (const sessionId of sessions)
      expect((await workerOf(b, sessionId)).cwd).toEndWith(`/${sessionId}/project`)
  })
})

describe.each(TRANSPORTS)('two brokers on one Postgres database, %s', (transport) => {
  const pg = databases().find((d) => d.name === 'postgres')
  test.skipIf(!pg)(
    'they never run two turns of one session at once, and keep each session’s order',
    async () => {
      await using a = await startTurnBroker({ db: pg!, transport })
      // A second replica on the same database and workspace store, with the same fake worker.
      const other = await startReplica(a, transport)
      try {
        const sessions = [newSessionId('rep'), newSessionId('rep'), newSessionId('rep')]
        const ids = new Map<string, string[]>(sessions.map((s) => [s, []]))
        // Each session's turns are queued through both brokers by turns.
        for (let k = 0; k < 3; k++)
          for (const [i, sessionId] of sessions.entries()) {
            const url = (i + k) % 2 === 0 ? a.url : other.url
            const res = await fetch(`${url}/api/v2/turns`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({
                session_id: sessionId,
                workspace_id: 'ws-rep',
                user_message: `m${k}`,
                metadata: scenario('slow', 300),
              }),
            })
            expect(res.status).toBe(202)
            ids.get(sessionId)!.push(((await res.json()) as { turn_id: string }).turn_id)
          }
        for (const sessionId of sessions) {
          const turns = await Promise.all(
            ids
              .get(sessionId)!
              .map((id) => a.waitState(id, ['done', 'failed', 'cancelled'], 60_000)),
          )
          expect(turns.map((t) => [t.state, t.attempts, t.result.result])).toEqual([
            ['done', 1, 'echo: m0'],
            ['done', 1, 'echo: m1 (history: 1)'],
            ['done', 1, 'echo: m2 (history: 2)'],
          ])
          for (let i = 1; i < turns.length; i++)
            expect(overlaps(turns[i - 1]!, turns[i]!)).toBe(false)
        }
      } finally {
        await other.stop()
      }
    },
  )
})
