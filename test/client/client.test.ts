import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createClient } from '../../src/client/client.ts'
import { BrokerApiError } from '../../src/client/errors.ts'
import type { BrokerEvent } from '../../src/client/events.ts'
import { startTestBroker, type TestBroker } from '../../src/testing/test-broker.ts'
import { startTcpProxy } from '../helpers/tcp-proxy.ts'
import { until } from '../helpers/until.ts'

describe('the client over a connection that drops', () => {
  let b: TestBroker
  let proxy: ReturnType<typeof startTcpProxy>
  beforeAll(async () => {
    b = await startTestBroker({ config: { CCBROKER_QUEUE_DEPTH: '1' } })
    proxy = startTcpProxy({ hostname: '127.0.0.1', port: b.broker.port })
  })
  afterAll(async () => {
    proxy.stop()
    await b.stop()
  })
  const client = () => createClient({ url: proxy.url, reconnectMs: 20 })
  // What a replay shows: the partial-message frames seen live are not kept.
  const ids = (events: BrokerEvent[]) => events.filter((e) => !e.ephemeral).map((e) => e.event_id)

  test('streamTurn resumes after the cut with Last-Event-ID: every event once, in order, to done', async () => {
    const held = b.worker!.hold('c1')
    const got: BrokerEvent[] = []
    const stream = client().streamTurn({ sessionId: 'c1', workspaceId: 'w', message: 'hi' })
    const first = await stream.next()
    got.push(first.value as BrokerEvent)
    await held.arrived
    proxy.cut()
    held.release({ steps: [{ text: 'after the cut' }], reply: 'done now' })
    for await (const e of stream) got.push(e)
    expect(got.at(-1)).toMatchObject({ source: 'broker', event_type: 'done' })
    expect(ids(got)).toEqual(ids(await b.client.listEvents('c1')))
  })

  test('followEvents goes on across cuts; a turn after the cut arrives whole', async () => {
    const one = await b.client.runTurn({ sessionId: 'c2', workspaceId: 'w', message: 'one' })
    const ac = new AbortController()
    const got: BrokerEvent[] = []
    const following = (async () => {
      for await (const e of client().followEvents('c2', { signal: ac.signal })) got.push(e)
    })()
    await until(() => got.some((e) => e.event_id === one.events.at(-1)!.event_id))
    proxy.cut()
    const two = await b.client.runTurn({ sessionId: 'c2', workspaceId: 'w', message: 'two' })
    await until(() => got.some((e) => e.event_id === two.events.at(-1)!.event_id))
    ac.abort()
    await following
    expect(ids(got)).toEqual([...ids(one.events), ...ids(two.events)])
  })

  test('a finished turn’s stream read from its end answers 204, so the client stops at once', async () => {
    const out = await b.client.runTurn({ sessionId: 'c3', workspaceId: 'w', message: 'x' })
    const last = out.events.at(-1)!.sequence_num
    const res = await fetch(`${b.url}/api/turns/${out.turnId}/events`, {
      headers: { 'last-event-id': String(last) },
    })
    expect(res.status).toBe(204)
    const rest: BrokerEvent[] = []
    for await (const e of client().turnEvents(out.turnId, { since: last })) rest.push(e)
    expect(rest).toEqual([])
  })

  test('errors are typed: status, the broker’s message, and Retry-After when it says one', async () => {
    const held = b.worker!.hold('c4')
    await b.client.enqueueTurn({ sessionId: 'c4', workspaceId: 'w', message: 'running' })
    await held.arrived
    await b.client.enqueueTurn({ sessionId: 'c4', workspaceId: 'w', message: 'queued' })
    const full = await b.client
      .enqueueTurn({ sessionId: 'c4', workspaceId: 'w', message: 'one too many' })
      .catch((e) => e)
    held.release()
    expect(full).toBeInstanceOf(BrokerApiError)
    expect(full).toMatchObject({ status: 429, retryAfterSeconds: expect.any(Number) })
    expect(full.message).toContain('already has 1 turns waiting')
    const bad = await b.client
      .enqueueTurn({ sessionId: 'c5', workspaceId: 'no spaces allowed', message: 'x' })
      .catch((e) => e)
    expect(bad).toMatchObject({ status: 400, message: expect.stringContaining('workspace_id') })
  })
})
