import { describe, expect, test } from 'bun:test'
import { databases } from '../helpers/databases.ts'
import { newSessionId, scenario, startTurnBroker, TRANSPORTS, types } from '../helpers/turns.ts'
import { until } from '../helpers/until.ts'
import { bridgeWorker } from '../helpers/worker-client.ts'
import { connect } from 'node:net'

const BUFFER = 20

describe.each(TRANSPORTS)('slow consumers, %s', (transport) => {
  test('a worker batch larger than the listener buffer: the turn’s executor reads on from the log, the turn finishes and the broker keeps answering', async () => {
    await using b = await startTurnBroker({
      db: databases()[0]!,
      transport,
      env: { CCBROKER_SSE_BUFFER: String(BUFFER) },
    })
    const sessionId = newSessionId('burst')
    const held = b.control.hold(sessionId)
    const { turn_id: turnId } = await b.enqueue({
      session_id: sessionId,
      workspace_id: 'ws-burst',
      user_message: 'a lot at once',
      metadata: scenario('control'),
    })
    await held.arrived
    // 100 assistant events in one write, five times the buffer, then the reply and result.
    held.release({ burst: 100, reply: 'after the burst' })
    const started = Date.now()
    const turn = await b.waitState(turnId, ['done', 'failed', 'cancelled'])
    expect(turn).toEqual(expect.objectContaining({ state: 'done', error: null }))
    expect(turn.result.result).toBe('after the burst')
    const health = await b.api('GET', '/healthz')
    expect(health).toEqual({ status: 200, headers: expect.any(Headers), body: { status: 'ok' } })
    const frames = await b.follow(turnId)
    expect(types(frames).filter((t) => t === 'assistant')).toHaveLength(101)
    // It finished promptly instead of spinning: well under the old 28 s freeze.
    expect(Date.now() - started).toBeLessThan(10_000)
  })
})

describe('a listener that never reads', () => {
  test('is cut off once it falls behind, and its connection is closed (it reconnects with Last-Event-ID)', async () => {
    await using b = await startTurnBroker({
      db: databases()[0]!,
      transport: 'stdio',
      env: { CCBROKER_SSE_BUFFER: String(BUFFER) },
    })
    const created = await b.api('POST', '/v1/sessions', { workspace_id: 'ws-stall' })
    const sessionId = created.body.session.id as string
    const worker = await bridgeWorker(b, sessionId)
    // A raw connection that sends its request, then reads nothing (paused) until the end.
    const socket = connect(Number(new URL(b.url).port), '127.0.0.1')
    let received = 0
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
    const started = new Promise<void>((resolve) => socket.once('data', () => resolve()))
    socket.on('data', (chunk: Buffer) => void (received += chunk.length))
    socket.write(
      `GET /v1/sessions/${sessionId}/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
        'Accept: text/event-stream\r\n\r\n',
    )
    await started
    socket.pause()
    // Far more than the socket buffers hold: the broker cannot write to it any more.
    const pad = 'x'.repeat(4_000)
    for (let i = 0; i < 100; i++) {
      const events = Array.from({ length: 100 }, () => ({
        payload: { type: 'assistant', message: { role: 'assistant', content: pad } },
      }))
      expect((await worker.postEvents(events)).status).toBe(200)
    }
    // The broker cut it off and ended the response on its own: once the client reads again,
    // it finds the connection closed (without that, this would wait for ever).
    socket.resume()
    await closed
    expect(received).toBeLessThan(100 * 100 * pad.length)
  })
})
