import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { databases } from '../helpers/databases.ts'
import {
  captureLog,
  isRunning,
  newSessionId,
  postTurn,
  readAll,
  scenario,
  startTurnBroker,
  TRANSPORTS,
  types,
  workerOf,
  type TurnBroker,
} from '../helpers/turns.ts'

const ISO = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)

/** The summary a turn keeps of the fake's result after an interrupt. */
const interruptedResult = {
  subtype: 'error_during_execution',
  is_error: true,
  result: null,
  total_cost_usd: 0.0123,
  cost_usd: 0.0123,
  // The fake's model is the one the turn named (fake:<scenario> picks the scenario).
  model_usage: {
    'fake:hang': {
      input_tokens: 10,
      output_tokens: 5,
      cache_read_input_tokens: 0,
      cache_creation_input_tokens: 0,
      cost_usd: 0.0123,
    },
  },
  usage: { input_tokens: 10, output_tokens: 5 },
  num_turns: 1,
  duration_ms: expect.any(Number),
}

describe.each(TRANSPORTS)('cancelling turns on %s', (transport) => {
  const capture = captureLog()
  let b: TurnBroker
  beforeAll(async () => {
    // A process per turn: a cancelled worker is gone (a warm one survives: warm-workers.test.ts).
    b = await startTurnBroker({
      db: databases()[0]!,
      transport,
      log: capture.log,
      env: { CCBROKER_WORKER_IDLE_MS: '0' },
    })
  })
  afterAll(() => b.stop())

  const enqueue = (sessionId: string, text: string, metadata: Record<string, unknown> = {}) =>
    b.enqueue({ session_id: sessionId, workspace_id: 'ws-cancel', user_message: text, metadata })

  test('a queued turn is cancelled at once: its stream ends with a cancelled done frame; a running one is interrupted and stopped', async () => {
    const sessionId = newSessionId()
    const running = await enqueue(sessionId, 'wait forever', scenario('hang'))
    const queued = await enqueue(sessionId, 'never runs')
    const worker = await workerOf(b, sessionId)
    // The worker has begun its turn (an interrupt before that has nothing to abort).
    await b.waitEvent(sessionId, running.turn_id, 'system')
    expect(await isRunning(worker.pid)).toBe(true)

    const cancelQueued = await b.api('POST', `/api/turns/${queued.turn_id}/cancel`)
    expect(cancelQueued).toEqual({
      status: 200,
      headers: expect.any(Headers),
      body: {
        turn: {
          id: queued.turn_id,
          session_id: sessionId,
          workspace_id: 'ws-cancel',
          state: 'cancelled',
          attempts: 0,
          error: 'cancelled before it started',
          cost_usd: null,
          usage: null,
          result: null,
          metadata: {},
          im_channel_id: null,
          im_user_id: null,
          enqueued_at: ISO,
          started_at: null,
          finished_at: ISO,
        },
      },
    })
    const queuedFrames = await b.follow(queued.turn_id)
    expect(types(queuedFrames)).toEqual(['user', 'done'])
    expect(queuedFrames[1]!.data.payload).toEqual({
      type: 'done',
      uuid: expect.any(String),
      turn_id: queued.turn_id,
      state: 'cancelled',
      error: 'cancelled before it started',
      result: null,
    })
    // The running turn was not touched by that.
    expect((await b.turn(running.turn_id)).state).toBe('running')
    expect(await isRunning(worker.pid)).toBe(true)

    const cancelRunning = await b.api('POST', `/api/turns/${running.turn_id}/cancel`)
    expect(cancelRunning.status).toBe(200)
    expect(cancelRunning.body.turn).toEqual(
      expect.objectContaining({
        id: running.turn_id,
        state: 'cancelled',
        error: 'cancelled',
        attempts: 1,
        result: interruptedResult,
        finished_at: ISO,
      }),
    )
    expect(await isRunning(worker.pid)).toBe(false)
    const frames = await b.follow(running.turn_id)
    // The worker saw the interrupt (over stdin, or as a logged control request with CCR v2):
    // it answered, aborted its turn and reported that as its result.
    expect(types(frames)).toEqual([
      'user',
      'turn_started',
      'system',
      ...(transport === 'ccr' ? ['control_request', 'control_response'] : ['control_response']),
      'user',
      'result',
      ...(transport === 'ccr' ? ['control_request', 'control_response'] : []),
      'done',
    ])
    expect(frames.at(-1)!.data.payload).toEqual({
      type: 'done',
      uuid: expect.any(String),
      turn_id: running.turn_id,
      state: 'cancelled',
      error: 'cancelled',
      result: interruptedResult,
    })
    // Cancelled is final: a second cancel is a conflict.
    expect(await b.api('POST', `/api/turns/${running.turn_id}/cancel`)).toEqual({
      status: 409,
      headers: expect.any(Headers),
      body: { error: `turn ${running.turn_id} is already cancelled` },
    })
  })

  test('a worker that ignores interrupt and SIGTERM is killed with SIGKILL; the turn is cancelled', async () => {
    const sessionId = newSessionId()
    const { turn_id: turnId } = await enqueue(sessionId, 'ignore everything', scenario('stubborn'))
    const worker = await workerOf(b, sessionId)
    await b.waitEvent(sessionId, turnId, 'system')
    const cancel = await b.api('POST', `/api/turns/${turnId}/cancel`)
    expect(cancel.status).toBe(200)
    expect(cancel.body.turn).toEqual(
      expect.objectContaining({ state: 'cancelled', error: 'cancelled', result: null }),
    )
    expect(await isRunning(worker.pid)).toBe(false)
    // It was asked first: its stderr (in the broker's log, tagged with the turn) shows SIGTERM.
    const stderr = capture.records
      .filter((r) => r.turnId === turnId && r.msg === 'worker stderr')
      .map((r) => r.line)
    expect(stderr).toContain('fake-claude: ignoring SIGTERM')
    expect(types(await b.follow(turnId)).at(-1)).toBe('done')
  })

  test('a client that disconnects from POST /api/turns does not stop the turn: it finishes and can be followed again', async () => {
    const sessionId = newSessionId()
    const held = b.control.hold(sessionId)
    const stream = await postTurn(b.url, {
      session_id: sessionId,
      workspace_id: 'ws-cancel',
      user_message: 'keep going without me',
      metadata: scenario('control'),
    })
    const first = (await stream.next())!
    expect(first.data.event_type).toBe('user')
    const turnId = first.data.turn_id as string
    stream.close()
    // Hung up while the worker is mid-turn: the turn goes on.
    await held.arrived
    expect((await b.turn(turnId)).state).toBe('running')
    held.release()
    const done = await b.waitState(turnId, ['done', 'failed', 'cancelled'])
    expect(done.state).toBe('done')
    expect(done.result.result).toBe('echo: keep going without me')
    const again = await b.follow(turnId)
    expect(again[0]).toEqual(first)
    expect(again.at(-1)!.data.payload.state).toBe('done')
    expect(types(again)).toContain('assistant')
  })
})
