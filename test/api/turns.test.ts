import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { databases } from '../helpers/databases.ts'
import { openSse } from '../helpers/sse.ts'
import {
  newSessionId,
  postTurn,
  readAll,
  scenario,
  startTurnBroker,
  TRANSPORTS,
  types,
  type TurnBroker,
} from '../helpers/turns.ts'

const ISO = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
const USAGE = { input_tokens: 10, output_tokens: 5 }

/** The `result` summary a turn keeps from the fake's successful result event. */
const resultOf = (text: string) => ({
  subtype: 'success',
  is_error: false,
  result: text,
  total_cost_usd: 0.0123,
  cost_usd: 0.0123,
  model_usage: {
    'fake-model': {
      input_tokens: 10,
      output_tokens: 5,
      cache_read_input_tokens: 0,
      cache_creation_input_tokens: 0,
      cost_usd: 0.0123,
    },
  },
  usage: USAGE,
  num_turns: 1,
  duration_ms: expect.any(Number),
})

/** A frame's event as the API shows it. */
const event = (fields: Record<string, unknown>) => ({
  event_id: expect.any(String),
  sequence_num: expect.any(Number),
  epoch: expect.any(Number),
  ephemeral: false,
  created_at: ISO,
  ...fields,
})

/**
 * The event types of an echo turn, in order, the same on both transports: the worker stays for
 * the session's next turn, so a CCR v2 worker is sent no end_session.
 */
const ECHO = ['user', 'turn_started', 'system', 'assistant', 'result', 'done']
const ECHO_TYPES = { stdio: ECHO, ccr: ECHO }

describe.each(TRANSPORTS)('turn API on %s', (transport) => {
  let b: TurnBroker
  beforeAll(async () => {
    b = await startTurnBroker({ db: databases()[0]!, transport })
  })
  afterAll(() => b.stop())

  test('POST /api/turns streams the turn’s frames and ends with a done frame holding the result', async () => {
    const sessionId = newSessionId()
    await using stream = await postTurn(b.url, {
      session_id: sessionId,
      workspace_id: 'ws-api',
      user_message: 'hello there',
    })
    expect(stream.status).toBe(200)
    expect(stream.headers.get('content-type')).toBe('text/event-stream')
    const frames = await readAll(stream)
    expect(types(frames)).toEqual(ECHO_TYPES[transport])
    const turnId = frames[0]!.data.turn_id as string
    expect(turnId).toMatch(/^turn_[0-9a-f]{32}$/)
    // Every frame is this turn's, ids are the sequence numbers, in order.
    expect(frames.map((f) => f.data.turn_id)).toEqual(frames.map(() => turnId))
    expect(frames.map((f) => Number(f.id))).toEqual(frames.map((f) => f.data.sequence_num))
    expect(frames.map((f) => f.data.sequence_num)).toEqual(
      frames.map((f) => f.data.sequence_num).toSorted((x, y) => x - y),
    )
    expect(frames[0]!.data).toEqual(
      event({
        event_type: 'user',
        source: 'client',
        epoch: 0,
        turn_id: turnId,
        // The user message comes before the turn's first attempt.
        attempt: 0,
        payload: {
          type: 'user',
          uuid: frames[0]!.data.event_id,
          message: { role: 'user', content: 'hello there' },
          parent_tool_use_id: null,
          session_id: expect.any(String),
        },
      }),
    )
    expect(
      frames.find((f) => f.data.event_type === 'assistant')!.data.payload.message.content,
    ).toEqual([{ type: 'text', text: 'echo: hello there' }])
    const done = frames.at(-1)!.data
    expect(done).toEqual(
      event({
        event_type: 'done',
        source: 'broker',
        epoch: 0,
        turn_id: turnId,
        attempt: 1,
        payload: {
          type: 'done',
          uuid: done.event_id,
          turn_id: turnId,
          state: 'done',
          error: null,
          result: resultOf('echo: hello there'),
        },
      }),
    )
  })

  test('GET /api/turns/:id shows state, timestamps, cost and usage from the result; GET /v1/sessions/:id/turns lists them newest first', async () => {
    const sessionId = newSessionId()
    const first = await readAll(
      await postTurn(b.url, { session_id: sessionId, workspace_id: 'ws-api', user_message: 'one' }),
    )
    const second = await readAll(
      await postTurn(b.url, {
        session_id: sessionId,
        workspace_id: 'ws-api',
        user_message: 'two',
        im_channel_id: 'chan-1',
        im_user_id: 'user-1',
        metadata: { trace: 'abc' },
      }),
    )
    const ids = [first[0]!.data.turn_id, second[0]!.data.turn_id]
    const turnOf = (id: string, text: string, extra: Record<string, unknown> = {}) => ({
      id,
      session_id: sessionId,
      workspace_id: 'ws-api',
      state: 'done',
      attempts: 1,
      error: null,
      cost_usd: 0.0123,
      usage: USAGE,
      result: resultOf(text),
      metadata: {},
      im_channel_id: null,
      im_user_id: null,
      enqueued_at: ISO,
      started_at: ISO,
      finished_at: ISO,
      ...extra,
    })
    const got = await b.api('GET', `/api/turns/${ids[1]}`)
    expect(got).toEqual({
      status: 200,
      headers: expect.any(Headers),
      body: {
        turn: turnOf(ids[1], 'echo: two (history: 1)', {
          im_channel_id: 'chan-1',
          im_user_id: 'user-1',
          metadata: { trace: 'abc' },
          // The warm worker's totals count its process (as 2.1.120's do): the turn's own cost is
          // what this result adds to the first.
          result: { ...resultOf('echo: two (history: 1)'), total_cost_usd: 0.0246 },
        }),
      },
    })
    const t = got.body.turn
    expect(Date.parse(t.enqueued_at)).toBeLessThanOrEqual(Date.parse(t.started_at))
    expect(Date.parse(t.started_at)).toBeLessThanOrEqual(Date.parse(t.finished_at))

    expect(await b.api('GET', `/v1/sessions/${sessionId}/turns`)).toEqual({
      status: 200,
      headers: expect.any(Headers),
      body: { data: [got.body.turn, turnOf(ids[0], 'echo: one')], next_cursor: null },
    })
    const page1 = await b.api('GET', `/v1/sessions/${sessionId}/turns?limit=1`)
    expect(page1.body).toEqual({ data: [got.body.turn], next_cursor: ids[1] })
    const page2 = await b.api('GET', `/v1/sessions/${sessionId}/turns?limit=1&cursor=${ids[1]}`)
    expect(page2.body).toEqual({ data: [turnOf(ids[0], 'echo: one')], next_cursor: null })
    // A session that does not exist has no list.
    const unknown = newSessionId()
    expect((await b.api('GET', `/v1/sessions/${unknown}/turns`)).body).toEqual({
      error: `session ${unknown} not found`,
    })
  })

  test('POST /api/v2/turns → 202 {turn_id, session_id, events_url}; events_url replays the turn and closes after done', async () => {
    const sessionId = newSessionId()
    const res = await b.api('POST', '/api/v2/turns', {
      session_id: sessionId,
      workspace_id: 'ws-api',
      user_message: 'queued',
    })
    expect(res).toEqual({
      status: 202,
      headers: expect.any(Headers),
      body: {
        turn_id: expect.stringMatching(/^turn_[0-9a-f]{32}$/),
        session_id: sessionId,
        events_url: `/api/turns/${res.body.turn_id}/events`,
      },
    })
    const { turn_id: turnId, events_url: eventsUrl } = res.body
    await b.waitState(turnId, ['done'])
    await using sse = await openSse(b.url + eventsUrl)
    expect(sse.status).toBe(200)
    const all = await readAll(sse)
    expect(types(all)).toEqual(ECHO_TYPES[transport])
    expect(all.at(-1)!.data.payload).toEqual({
      type: 'done',
      uuid: expect.any(String),
      turn_id: turnId,
      state: 'done',
      error: null,
      result: resultOf('echo: queued'),
    })

    // Replay after a cursor: Last-Event-ID, ?since=, and the larger of the two when both are given.
    const resultSeq = all.find((f) => f.data.event_type === 'result')!.id!
    const after = all.slice(all.findIndex((f) => f.id === resultSeq) + 1)
    expect(await b.follow(turnId, { 'last-event-id': resultSeq })).toEqual(after)
    expect(await b.follow(turnId, {}, `?since=${resultSeq}`)).toEqual(after)
    expect(await b.follow(turnId, { 'last-event-id': all[0]!.id! }, `?since=${resultSeq}`)).toEqual(
      after,
    )
    expect(await b.follow(turnId, { 'last-event-id': all.at(-1)!.id! })).toEqual([])
  })

  test('GET events_url while the turn runs follows it live and closes after its done frame', async () => {
    const sessionId = newSessionId()
    const held = b.control.hold(sessionId)
    const { turn_id: turnId, events_url: eventsUrl } = await b.enqueue({
      session_id: sessionId,
      workspace_id: 'ws-api',
      user_message: 'take your time',
      metadata: scenario('control'),
    })
    await using sse = await openSse(b.url + eventsUrl)
    const [first] = await sse.take(1)
    expect(first!.data.event_type).toBe('user')
    // The worker is mid-turn and waits to be released: what follows arrives live.
    await held.arrived
    expect((await b.turn(turnId)).state).toBe('running')
    held.release()
    const rest = await readAll(sse)
    expect(types([first!, ...rest])).toEqual(ECHO_TYPES[transport])
    expect(rest.at(-1)!.data.payload.state).toBe('done')
    expect((await b.turn(turnId)).state).toBe('done')
  })

  test('GET and cancel of an unknown turn → 404 JSON; cancel of a finished turn → 409 JSON', async () => {
    expect(await b.api('GET', '/api/turns/turn_nope')).toEqual({
      status: 404,
      headers: expect.any(Headers),
      body: { error: 'turn turn_nope not found' },
    })
    expect((await b.api('GET', '/api/turns/turn_nope/events')).body).toEqual({
      error: 'turn turn_nope not found',
    })
    expect(await b.api('POST', '/api/turns/turn_nope/cancel')).toEqual({
      status: 404,
      headers: expect.any(Headers),
      body: { error: 'turn turn_nope not found' },
    })
    const frames = await readAll(
      await postTurn(b.url, {
        session_id: newSessionId(),
        workspace_id: 'ws-api',
        user_message: 'x',
      }),
    )
    const turnId = frames[0]!.data.turn_id
    const cancel = await b.api('POST', `/api/turns/${turnId}/cancel`)
    expect(cancel).toEqual({
      status: 409,
      headers: expect.any(Headers),
      body: { error: `turn ${turnId} is already done` },
    })
    expect(cancel.headers.get('content-type')).toStartWith('application/json')
    expect((await b.turn(turnId)).state).toBe('done')
  })

  test('bad turn input → 400 naming the field, and nothing is stored', async () => {
    const sessionId = newSessionId()
    const valid = { session_id: sessionId, workspace_id: 'ws-api', user_message: 'hi' }
    const cases: [unknown, string][] = [
      [{ workspace_id: 'ws-api', user_message: 'hi' }, 'session_id: '],
      [{ ...valid, session_id: '../etc' }, 'session_id: '],
      [{ ...valid, session_id: 'x'.repeat(129) }, 'session_id: '],
      [{ session_id: sessionId, user_message: 'hi' }, 'workspace_id: '],
      [{ session_id: sessionId, workspace_id: 'ws-api' }, 'user_message: '],
      [{ ...valid, user_message: '' }, 'user_message: '],
      [{ ...valid, user_message: [] }, 'user_message: '],
      [{ ...valid, user_message: 42 }, 'user_message: '],
      [{ ...valid, metadata: 'fast' }, 'metadata: '],
      [{ ...valid, metadata: { max_duration_ms: 5 } }, 'metadata.max_duration_ms: '],
      [{ ...valid, metadata: { max_duration_ms: '60000' } }, 'metadata.max_duration_ms: '],
      [{ ...valid, metadata: { permission_mode: 'yolo' } }, 'metadata.permission_mode: '],
      [{ ...valid, im_channel_id: '' }, 'im_channel_id: '],
    ]
    for (const path of ['/api/turns', '/api/v2/turns'])
      for (const [body, prefix] of cases) {
        const res = await b.api('POST', path, body)
        expect({ path, body, status: res.status }).toEqual({ path, body, status: 400 })
        expect(res.body).toEqual({
          error: expect.stringMatching(new RegExp(`^${prefix.replace('.', '\\.')}`)),
        })
      }
    expect((await b.api('POST', '/api/v2/turns', '{"session_id":')).body).toEqual({
      error: 'request body is not valid JSON',
    })
    // Nothing was created: no session, no turns.
    expect((await b.api('GET', `/v1/sessions/${sessionId}`)).status).toBe(404)
    expect((await b.api('GET', `/v1/sessions/${sessionId}/turns`)).status).toBe(404)
    // The contrast: the same body, valid, is accepted.
    expect((await b.api('POST', '/api/v2/turns', valid)).status).toBe(202)
  })

  test('a turn for a session of another workspace → 409, nothing stored', async () => {
    const sessionId = newSessionId()
    const { turn_id } = await b.enqueue({
      session_id: sessionId,
      workspace_id: 'ws-a',
      user_message: 'a',
    })
    await b.waitState(turn_id, ['done'])
    const before = (await b.api('GET', `/v1/sessions/${sessionId}/events?limit=1000`)).body.data
    for (const path of ['/api/turns', '/api/v2/turns'])
      expect(
        await b.api('POST', path, {
          session_id: sessionId,
          workspace_id: 'ws-b',
          user_message: 'b',
        }),
      ).toEqual({
        status: 409,
        headers: expect.any(Headers),
        body: { error: `session ${sessionId} belongs to workspace ws-a, not ws-b` },
      })
    expect((await b.api('GET', `/v1/sessions/${sessionId}/events?limit=1000`)).body.data).toEqual(
      before,
    )
    expect(
      (await b.api('GET', `/v1/sessions/${sessionId}/turns`)).body.data.map((t: any) => t.id),
    ).toEqual([turn_id])
  })
})
