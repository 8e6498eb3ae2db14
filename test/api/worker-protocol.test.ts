import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startTestBroker, type TestBroker } from '../helpers/broker.ts'
import { databases } from '../helpers/databases.ts'
import { openSse } from '../helpers/sse.ts'
import { bridgeWorker } from '../helpers/worker-client.ts'

const userMessage = (text: string, uuid: string = crypto.randomUUID()) => ({
  type: 'user',
  message: { role: 'user', content: text },
  parent_tool_use_id: null,
  session_id: 'ignored',
  uuid,
})

describe.each(databases())('CCR v2 worker protocol on $name', (db) => {
  let b: TestBroker
  beforeAll(async () => {
    b = await startTestBroker({ db: db })
  })
  afterAll(() => b.stop())

  const newSession = async () => {
    const res = await b.api('POST', '/v1/sessions', { workspace_id: 'ws-proto' })
    expect(res.status).toBe(201)
    return res.body.session.id as string
  }
  const bridge = (id: string) => bridgeWorker(b, id)
  const sendUser = async (id: string, text: string) => {
    const res = await b.api('POST', `/v1/sessions/${id}/events`, {
      events: [{ payload: userMessage(text) }],
    })
    expect(res.status).toBe(200)
    return res.body.events[0] as { event_id: string; sequence_num: number }
  }
  const allEvents = async (id: string) =>
    (await b.api('GET', `/v1/sessions/${id}/events?limit=1000`)).body.data

  test('bridge answers a token, the sdk url and an epoch that grows by one each time', async () => {
    const id = await newSession()
    const first = await b.api('POST', `/v1/sessions/${id}/bridge`)
    expect(first.body).toEqual({
      worker_jwt: expect.stringMatching(/^eyJ[\w-]+\.[\w-]+\.[\w-]+$/),
      api_base_url: `${b.url}/v1/sessions/${id}`,
      expires_in: 86400,
      worker_epoch: 1,
    })
    const claims = JSON.parse(
      Buffer.from(first.body.worker_jwt.split('.')[1], 'base64url').toString(),
    )
    expect(claims).toEqual({
      sid: id,
      wid: 'ws-proto',
      epoch: 1,
      exp: expect.any(Number),
      iat: expect.any(Number),
    })
    const second = await b.api('POST', `/v1/sessions/${id}/bridge`)
    expect(second.body.worker_epoch).toBe(2)
    expect((await b.api('GET', `/v1/sessions/${id}`)).body.session.epoch).toBe(2)
  })

  test('a whole turn: register, stream, events, delivery, heartbeat, internal events', async () => {
    const id = await newSession()
    const w = await bridge(id)

    expect(await w.getWorker()).toEqual({
      status: 200,
      contentType: 'application/json;charset=utf-8',
      body: {
        worker: {
          session_id: id,
          worker_epoch: 1,
          worker_status: 'starting',
          external_metadata: {},
          requires_action_details: null,
          last_heartbeat_at: null,
          registered_at: expect.any(String),
        },
      },
    })
    expect(
      await w.putWorker({
        worker_status: 'idle',
        external_metadata: { pending_action: null, task_summary: null },
      }),
    ).toMatchObject({ status: 200, body: {} })

    await using stream = await w.stream()
    expect(stream.status).toBe(200)
    expect(stream.headers.get('content-type')).toBe('text/event-stream')

    const sent = await sendUser(id, 'Say hello please.')
    const [frame] = await stream.take(1)
    expect(frame!.raw).toBe(
      `event: client_event\nid: ${sent.sequence_num}\ndata: ${JSON.stringify(frame!.data)}\n\n`,
    )
    expect(frame!.data).toEqual({
      event_id: sent.event_id,
      sequence_num: sent.sequence_num,
      event_type: 'client_event',
      source: 'client',
      payload: userMessage('Say hello please.', sent.event_id),
      created_at: expect.any(String),
    })
    expect(stream.text()).not.toContain('\r')

    expect((await w.delivery([{ event_id: sent.event_id, status: 'received' }])).status).toBe(200)
    await w.putWorker({ worker_status: 'running', requires_action_details: null })
    await w.putWorker({ external_metadata: { post_turn_summary: null, model: 'claude-haiku-4-5' } })
    await w.delivery([{ event_id: sent.event_id, status: 'processing' }])
    const init = { type: 'system', subtype: 'init', session_id: 's', uuid: crypto.randomUUID() }
    const assistant = {
      type: 'assistant',
      message: { role: 'assistant', content: [{ type: 'text', text: 'Hello.' }] },
      uuid: crypto.randomUUID(),
    }
    const result = {
      type: 'result',
      subtype: 'success',
      is_error: false,
      uuid: crypto.randomUUID(),
    }
    expect(await w.postEvents([{ payload: init }, { payload: assistant }])).toMatchObject({
      status: 200,
      body: {},
    })
    expect((await w.postEvents([{ payload: result }])).status).toBe(200)
    await w.delivery([{ event_id: sent.event_id, status: 'processed' }])
    expect((await w.heartbeat()).status).toBe(200)

    const worker = (await w.getWorker()).body.worker
    expect(worker).toEqual({
      session_id: id,
      worker_epoch: 1,
      worker_status: 'running',
      external_metadata: {
        pending_action: null,
        task_summary: null,
        post_turn_summary: null,
        model: 'claude-haiku-4-5',
      },
      requires_action_details: null,
      last_heartbeat_at: expect.any(String),
      registered_at: expect.any(String),
    })

    const events = await allEvents(id)
    expect(events.map((e: any) => [e.event_type, e.source, e.event_id, e.epoch])).toEqual([
      ['user', 'client', sent.event_id, 0],
      ['system', 'worker', init.uuid, 1],
      ['assistant', 'worker', assistant.uuid, 1],
      ['result', 'worker', result.uuid, 1],
    ])
    expect(events[2].payload).toEqual(assistant)

    // Worker events are not sent back to the worker.
    const after = await sendUser(id, 'Second.')
    const [next] = await stream.take(1)
    expect(next!.data.event_id).toBe(after.event_id)
  })

  test('a duplicate batch (a retry after a lost 200) is stored once', async () => {
    const id = await newSession()
    const w = await bridge(id)
    const batch = [1, 2, 3].map((i) => ({
      payload: { type: 'assistant', uuid: `00000000-0000-4000-8000-00000000000${i}`, n: i },
    }))
    expect((await w.postEvents(batch)).status).toBe(200)
    expect((await w.postEvents(batch)).status).toBe(200)
    expect(
      (await w.postEvents([batch[2]!, { payload: { type: 'result', uuid: 'r-1' } }])).status,
    ).toBe(200)
    const events = await allEvents(id)
    expect(events.map((e: any) => e.event_id)).toEqual([...batch.map((x) => x.payload.uuid), 'r-1'])
  })

  test('a payload without uuid is given one, kept in the payload; an ephemeral one reaches live listeners only', async () => {
    const id = await newSession()
    const w = await bridge(id)
    await using live = await openSse(`${b.url}/v1/sessions/${id}/events/stream`)
    await w.postEvents([
      { payload: { type: 'keep_alive' } },
      { payload: { type: 'stream_event' }, ephemeral: true },
    ])
    const frames = (await live.take(2)).map((f) => f.data)
    for (const e of frames) expect(e.payload.uuid).toBe(e.event_id)
    expect(frames.map((e: any) => e.ephemeral)).toEqual([false, true])
    // A replay shows whole messages only.
    expect((await allEvents(id)).map((e: any) => e.event_id)).toEqual([frames[0].event_id])
  })

  test('internal events round trip for --resume, foreground and subagents apart', async () => {
    const id = await newSession()
    const w = await bridge(id)
    const entries = [
      { payload: { type: 'user', uuid: 'u1', parentUuid: null } },
      { payload: { type: 'assistant', uuid: 'a1', parentUuid: 'u1' } },
      { payload: { type: 'assistant', uuid: 'sa1' }, agent_id: 'agent-7' },
      { payload: { type: 'summary', uuid: 'c1' }, is_compaction: true },
    ]
    expect((await w.postInternal(entries)).status).toBe(200)
    expect((await w.getInternal()).body).toEqual({
      data: [
        { payload: { type: 'user', uuid: 'u1', parentUuid: null } },
        { payload: { type: 'assistant', uuid: 'a1', parentUuid: 'u1' } },
        { payload: { type: 'summary', uuid: 'c1' }, is_compaction: true },
      ],
      next_cursor: null,
    })
    expect((await w.getInternal('?subagents=true')).body).toEqual({
      data: [{ payload: { type: 'assistant', uuid: 'sa1' }, agent_id: 'agent-7' }],
      next_cursor: null,
    })
    // A resumed worker (next epoch) reads the same transcript.
    const w2 = await bridge(id)
    expect((await w2.getInternal()).body.data).toHaveLength(3)
  })

  test('internal events page with next_cursor', async () => {
    const id = await newSession()
    const w = await bridge(id)
    const many = Array.from({ length: 1001 }, (_, i) => ({ payload: { type: 'user', i } }))
    await w.postInternal(many.slice(0, 1000))
    await w.postInternal(many.slice(1000))
    const first = await w.getInternal()
    expect(first.body.data).toHaveLength(1000)
    expect(first.body.next_cursor).toMatch(/^\d+$/)
    const second = await w.getInternal(`?cursor=${first.body.next_cursor}`)
    expect(second.body).toEqual({
      data: [{ payload: { type: 'user', i: 1000 } }],
      next_cursor: null,
    })
  })

  test('reconnect with from_sequence_num and Last-Event-ID resends only later events', async () => {
    const id = await newSession()
    const w = await bridge(id)
    const a = await sendUser(id, 'one')
    const c = await sendUser(id, 'two')
    await using s1 = await w.stream(a.sequence_num)
    const [f] = await s1.take(1)
    expect(f!.data.event_id).toBe(c.event_id)
    expect(f!.id).toBe(String(c.sequence_num))
    const d = await sendUser(id, 'three')
    const [live] = await s1.take(1)
    expect(live!.data.event_id).toBe(d.event_id)

    await using s2 = await w.stream(0)
    const replay = await s2.take(3)
    expect(replay.map((x) => x.data.event_id)).toEqual([a.event_id, c.event_id, d.event_id])
  })

  test('after a second bridge the old worker is fenced with 409 on every write, nothing stored', async () => {
    const id = await newSession()
    const old = await bridge(id)
    await bridge(id)
    const before = await allEvents(id)
    const attempts = [
      await old.postEvents([{ payload: { type: 'assistant', uuid: 'stale-1' } }]),
      await old.putWorker({ worker_status: 'running' }),
      await old.delivery([{ event_id: 'x', status: 'received' }]),
      await old.heartbeat(),
      await old.postInternal([{ payload: { type: 'user', uuid: 'stale-2' } }]),
      await old.getWorker(),
    ]
    for (const r of attempts) {
      expect(r.status).toBe(409)
      expect(r.contentType).toStartWith('application/json')
      expect(r.body).toEqual({ error: 'worker_epoch 1 is stale (current 2)' })
    }
    expect(await allEvents(id)).toEqual(before)
    const fresh = await bridge(id)
    expect((await fresh.getInternal()).body.data).toEqual([])
  })

  test('a body epoch that differs from the token is a 409', async () => {
    const id = await newSession()
    const w = await bridge(id)
    const res = await w.postEvents([{ payload: { type: 'assistant' } }], 5)
    expect(res).toMatchObject({
      status: 409,
      body: { error: "worker_epoch 5 does not match the token's epoch 1" },
    })
    expect(await allEvents(id)).toEqual([])
  })

  test('a new worker without a cursor starts after what earlier workers consumed', async () => {
    const id = await newSession()
    const w1 = await bridge(id)
    const done = await sendUser(id, 'handled by worker 1')
    const ctl = await b.api('POST', `/v1/sessions/${id}/events`, {
      events: [
        {
          payload: {
            type: 'control_request',
            request_id: 'r1',
            request: { subtype: 'end_session' },
          },
        },
      ],
    })
    const crashed = await sendUser(id, 'received by worker 1, never processed')
    await using s1 = await w1.stream()
    const got = await s1.take(3)
    expect(got.map((f) => f.data.event_id)).toEqual([
      done.event_id,
      ctl.body.events[0].event_id,
      crashed.event_id,
    ])
    await w1.delivery([
      { event_id: done.event_id, status: 'received' },
      { event_id: done.event_id, status: 'processed' },
      { event_id: ctl.body.events[0].event_id, status: 'received' },
      { event_id: crashed.event_id, status: 'received' },
      { event_id: crashed.event_id, status: 'processing' },
    ])
    // A late, lower report never moves a status backwards.
    await w1.delivery([{ event_id: done.event_id, status: 'received' }])
    s1.close()

    const w2 = await bridge(id)
    const pending = await sendUser(id, 'sent before worker 2 connects')
    await using s2 = await w2.stream()
    const replay = await s2.take(2)
    expect(replay.map((f) => f.data.event_id)).toEqual([crashed.event_id, pending.event_id])
    const live = await sendUser(id, 'live for worker 2')
    const [f] = await s2.take(1)
    expect(f!.data.event_id).toBe(live.event_id)
  })
})
