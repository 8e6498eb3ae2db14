import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync } from 'node:fs'
import { startTestBroker } from '../helpers/broker.ts'
import { databases } from '../helpers/databases.ts'
import {
  isRunning,
  newSessionId,
  scenario,
  startTurnBroker,
  TRANSPORTS,
  types,
  workerOf,
  type TurnBroker,
} from '../helpers/turns.ts'
import { until } from '../helpers/until.ts'

describe.each(TRANSPORTS)('worker failures on %s', (transport) => {
  let b: TurnBroker
  beforeAll(async () => {
    // A process per turn: each turn's worker is gone at its end.
    b = await startTurnBroker({
      db: databases()[0]!,
      transport,
      env: { CCBROKER_WORKER_IDLE_MS: '0' },
    })
  })
  afterAll(() => b.stop())

  /** Runs one turn to its end; answers the turn, its frames and its worker's record. */
  const runToEnd = async (metadata: Record<string, unknown>) => {
    const sessionId = newSessionId()
    const { turn_id: turnId } = await b.enqueue({
      session_id: sessionId,
      workspace_id: 'ws-fail',
      user_message: 'try',
      metadata,
    })
    const turn = await b.waitState(turnId, ['done', 'failed', 'cancelled'])
    return { turn, frames: await b.follow(turnId), worker: await workerOf(b, sessionId) }
  }
  /** The `error` event's payload and the done frame's, which must agree with the turn. */
  const failure = (frames: { data: any }[]) => ({
    error: frames.find((f) => f.data.event_type === 'error')?.data.payload,
    done: frames.at(-1)!.data.payload,
  })

  test('a worker that crashes before its result fails the turn with an error naming the exit code and stderr', async () => {
    const { turn, frames, worker } = await runToEnd(scenario('crash'))
    const message =
      `worker exited with code 3 before its result: fake-claude ${transport} started pid=${worker.pid}\n` +
      `fake-claude scenario=crash cwd=${worker.cwd}\nfake crash`
    expect(turn).toEqual(
      expect.objectContaining({ state: 'failed', error: message, result: null, cost_usd: null }),
    )
    expect(failure(frames)).toEqual({
      error: { type: 'error', uuid: expect.any(String), turn_id: turn.id, message },
      done: {
        type: 'done',
        uuid: expect.any(String),
        turn_id: turn.id,
        state: 'failed',
        error: message,
        result: null,
      },
    })
    expect(types(frames)).toEqual(['user', 'turn_started', 'system', 'error', 'done'])
    expect(existsSync(worker.env.HOME!)).toBe(false)
  })

  test('a worker that cannot start fails the turn with its exit code and stderr', async () => {
    const { turn, frames } = await runToEnd(scenario('no-start'))
    const message = 'worker exited with code 2 before its result: fake: cannot start'
    expect(turn).toEqual(expect.objectContaining({ state: 'failed', error: message }))
    expect(types(frames)).toEqual(['user', 'turn_started', 'error', 'done'])
    expect(failure(frames).done).toEqual(
      expect.objectContaining({ state: 'failed', error: message }),
    )
  })

  test('a turn past metadata.max_duration_ms is stopped and failed; its worker is gone', async () => {
    const { turn, frames, worker } = await runToEnd({ ...scenario('hang'), max_duration_ms: 1000 })
    const message = 'turn exceeded its maximum duration of 1000 ms'
    expect(turn).toEqual(expect.objectContaining({ state: 'failed', error: message }))
    expect(failure(frames).error).toEqual({
      type: 'error',
      uuid: expect.any(String),
      turn_id: turn.id,
      message,
    })
    expect(Date.parse(turn.finished_at) - Date.parse(turn.started_at)).toBeGreaterThanOrEqual(1000)
    expect(await isRunning(worker.pid)).toBe(false)
    expect(existsSync(worker.env.HOME!)).toBe(false)
  })

  test('the whole process group is killed: a child the worker left behind is gone after the turn', async () => {
    const sessionId = newSessionId()
    const { turn_id: turnId } = await b.enqueue({
      session_id: sessionId,
      workspace_id: 'ws-fail',
      user_message: 'spawn and hang',
      metadata: { ...scenario('grandchild'), max_duration_ms: 1000 },
    })
    // The fake records again once it has started its child.
    const worker = await until(
      async () => (await b.workers(sessionId)).find((w) => w.grandchild_pid !== undefined),
      { what: 'the grandchild’s pid' },
    )
    expect(await isRunning(worker.grandchild_pid!)).toBe(true)
    const turn = await b.waitState(turnId, ['done', 'failed', 'cancelled'])
    expect(turn.error).toBe('turn exceeded its maximum duration of 1000 ms')
    expect(await isRunning(worker.pid)).toBe(false)
    expect(await isRunning(worker.grandchild_pid!)).toBe(false)
  })

  test('a worker fenced by a newer epoch mid-turn is stopped and the turn fails; the broker goes on', async () => {
    const sessionId = newSessionId()
    const held = b.control.hold(sessionId)
    const { turn_id: turnId } = await b.enqueue({
      session_id: sessionId,
      workspace_id: 'ws-fail',
      user_message: 'slowly',
      metadata: scenario('control'),
    })
    await held.arrived
    const worker = await workerOf(b, sessionId)
    // Another worker generation takes the session over: the running one is stale now, and
    // what it writes once released is refused.
    expect((await b.api('POST', `/v1/sessions/${sessionId}/bridge`)).status).toBe(200)
    held.release()
    const turn = await b.waitState(turnId, ['done', 'failed', 'cancelled'])
    expect(turn.state).toBe('failed')
    expect(turn.error).toStartWith(
      `worker exited with code ${transport === 'stdio' ? 143 : 1} before its result`,
    )
    expect(await isRunning(worker.pid)).toBe(false)
    // Its late output was refused, not stored.
    expect(types(await b.follow(turnId))).toEqual([
      'user',
      'turn_started',
      'system',
      'error',
      'done',
    ])
    // The broker still runs the session's next turn.
    const next = await b.enqueue({
      session_id: sessionId,
      workspace_id: 'ws-fail',
      user_message: 'again',
    })
    expect((await b.waitState(next.turn_id, ['done', 'failed'])).state).toBe('done')
  })

  test('a missing CCBROKER_CLAUDE_BIN stops the broker from starting, with an error naming it', async () => {
    await expect(
      startTestBroker({
        db: databases()[0]!,
        env: { CCBROKER_CLAUDE_BIN: '/nonexistent/claude', CCBROKER_WORKER_TRANSPORT: transport },
      }),
    ).rejects.toThrow(
      'CCBROKER_CLAUDE_BIN: /nonexistent/claude is not an executable file or on PATH',
    )
  })
})
