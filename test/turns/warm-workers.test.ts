import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { databases } from '../helpers/databases.ts'
import {
  isRunning,
  newSessionId,
  scenario,
  startReplica,
  startTurnBroker,
  TRANSPORTS,
  types,
  type TurnBroker,
} from '../helpers/turns.ts'
import { until } from '../helpers/until.ts'

const reply = (frames: { data: any }[]) =>
  frames.filter((f) => f.data.event_type === 'assistant').at(-1)!.data.payload.message.content[0]
    .text

describe.each(TRANSPORTS)('warm workers on %s', (transport) => {
  let b: TurnBroker
  beforeAll(async () => {
    b = await startTurnBroker({
      db: databases()[0]!,
      transport,
      // A loaded machine may take a while to answer an interrupt: a warm worker must not be killed for it.
      env: {
        CCBROKER_WORKER_IDLE_MS: '600000',
        CCBROKER_MAX_WORKERS: '3',
        CCBROKER_STOP_GRACE_MS: '10000',
      },
    })
  })
  afterAll(() => b.stop())

  const run = async (sessionId: string, text: string, extra: Record<string, unknown> = {}) => {
    const { turn_id } = await b.enqueue({
      session_id: sessionId,
      workspace_id: `ws-warm-${sessionId}`,
      user_message: text,
      ...extra,
    })
    const frames = await b.follow(turn_id)
    return { turnId: turn_id as string, frames, turn: await b.turn(turn_id) }
  }

  test('a follow-up turn goes to the live process: one worker, the conversation goes on, each turn whole', async () => {
    const sessionId = newSessionId('warm')
    const one = await run(sessionId, 'remember 7')
    const two = await run(sessionId, 'which number?')
    expect(reply(one.frames)).toBe('echo: remember 7')
    expect(reply(two.frames)).toBe('echo: which number? (history: 1)')
    const workers = await b.workers(sessionId)
    expect(workers).toHaveLength(1)
    expect(await isRunning(workers[0]!.pid)).toBe(true)
    // Each turn has its own start, end and push, tagged with its own id.
    for (const t of [one, two]) {
      expect(types(t.frames)).toEqual([
        'user',
        'turn_started',
        'system',
        'assistant',
        'result',
        'done',
      ])
      expect(t.frames.every((f) => f.data.turn_id === t.turnId)).toBe(true)
      expect(t.frames.map((f) => f.data.event_type)).toContain('workspace_pushed')
      expect(t.turn.state).toBe('done')
    }
    // Only the first turn pulled the workspace: the second found it in place.
    expect(one.frames.map((f) => f.data.event_type)).toContain('workspace_pulled')
    expect(two.frames.map((f) => f.data.event_type)).not.toContain('workspace_pulled')
  })

  test('a follow-up turn with another model is told by control request over stdio, and respawned over ccr', async () => {
    const sessionId = newSessionId('model')
    await run(sessionId, 'first')
    const two = await run(sessionId, 'second', { metadata: scenario('echo') })
    expect(two.turn.state).toBe('done')
    expect(reply(two.frames)).toBe('echo: second (history: 1)')
    const workers = await b.workers(sessionId)
    expect(workers).toHaveLength(transport === 'stdio' ? 1 : 2)
    if (transport === 'stdio') {
      const init = two.frames.find((f) => f.data.event_type === 'system')!.data.payload
      expect(init.model).toBe('fake:echo')
    }
  })

  test('a cancelled warm turn ends at once and its process serves the next turn', async () => {
    const sessionId = newSessionId('cancel')
    await run(sessionId, 'first')
    const { turn_id } = await b.enqueue({
      session_id: sessionId,
      workspace_id: `ws-warm-${sessionId}`,
      user_message: 'wait forever',
      metadata: scenario('hang'),
    })
    await b.waitEvent(sessionId, turn_id, 'system')
    const worker = (await b.workers(sessionId)).at(-1)
    const cancel = await b.api('POST', `/api/turns/${turn_id}/cancel`)
    expect(cancel.body.turn.state).toBe('cancelled')
    expect(await isRunning(worker!.pid)).toBe(true)
    const three = await run(sessionId, 'still there?', { metadata: scenario('echo') })
    expect(three.turn.state).toBe('done')
    expect(reply(three.frames)).toBe('echo: still there? (history: 2)')
    // Over ccr the hang and echo turns ask for other models: new processes; over stdio, one.
    expect((await b.workers(sessionId)).length).toBe(transport === 'stdio' ? 1 : 3)
  })

  test('a warm worker that dies between turns is replaced by one that resumes the conversation', async () => {
    const sessionId = newSessionId('crash')
    await run(sessionId, 'remember 9')
    const [first] = await b.workers(sessionId)
    process.kill(-first!.pid, 'SIGKILL')
    await until(async () => !(await isRunning(first!.pid)), { what: 'the worker to be gone' })
    const two = await run(sessionId, 'which number?')
    expect(two.turn.state).toBe('done')
    expect(reply(two.frames)).toBe('echo: which number? (history: 1)')
    expect(await b.workers(sessionId)).toHaveLength(2)
  })

  test('another session of the workspace changing its files makes the next turn respawn and see them', async () => {
    const ws = `ws-shared-${newSessionId()}`
    const s1 = newSessionId('s1')
    const s2 = newSessionId('s2')
    const turn = async (sessionId: string, text: string) => {
      const { turn_id } = await b.enqueue({
        session_id: sessionId,
        workspace_id: ws,
        user_message: text,
      })
      return b.follow(turn_id)
    }
    await turn(s1, 'one')
    const held = b.control.hold(s2)
    const s2turn = turn(s2, 'write a note')
    await held.arrived
    held.release({
      steps: [{ mcp: 'workspace_write', args: { path: 'notes.md', content: 'from s2' } }],
    })
    await s2turn
    // s1's process read the workspace before s2 wrote to it: s1 gets a new one.
    const read = b.control.hold(s1)
    const again = turn(s1, 'read the note')
    await read.arrived
    read.release({ steps: [{ mcp: 'workspace_read', args: { path: 'notes.md' } }] })
    const frames = await again
    const result = frames.find(
      (f) =>
        f.data.event_type === 'user' &&
        f.data.source === 'worker' &&
        JSON.stringify(f.data.payload).includes('from s2'),
    )
    expect(result).toBeDefined()
    expect(await b.workers(s1)).toHaveLength(2)
    expect(reply(frames)).toContain('(history: 1)')
  })
})

describe.each(TRANSPORTS)('warm worker limits on %s', (transport) => {
  test('an idle worker stops after its idle time, and the next turn still remembers', async () => {
    await using b = await startTurnBroker({
      db: databases()[0]!,
      transport,
      env: { CCBROKER_WORKER_IDLE_MS: '300' },
    })
    const sessionId = newSessionId('idle')
    const first = await b.enqueue({
      session_id: sessionId,
      workspace_id: 'ws-idle',
      user_message: 'remember 5',
    })
    await b.follow(first.turn_id)
    const [worker] = await b.workers(sessionId)
    await until(async () => !(await isRunning(worker!.pid)), { what: 'the idle worker to stop' })
    const second = await b.enqueue({
      session_id: sessionId,
      workspace_id: 'ws-idle',
      user_message: 'which?',
    })
    const frames = await b.follow(second.turn_id)
    expect(reply(frames)).toBe('echo: which? (history: 1)')
    expect(await b.workers(sessionId)).toHaveLength(2)
  })

  test('idle workers hold slots of CCBROKER_MAX_WORKERS: the least recently used gives its up', async () => {
    await using b = await startTurnBroker({
      db: databases()[0]!,
      transport,
      env: { CCBROKER_WORKER_IDLE_MS: '600000', CCBROKER_MAX_WORKERS: '2' },
    })
    const turn = async (sessionId: string) => {
      const t = await b.enqueue({
        session_id: sessionId,
        workspace_id: 'ws-lru',
        user_message: 'hi',
      })
      await b.follow(t.turn_id)
      return (await b.workers(sessionId)).at(-1)!
    }
    const [a, c, d] = [newSessionId('a'), newSessionId('c'), newSessionId('d')]
    const wa = await turn(a)
    const wc = await turn(c)
    await turn(a) // a is now the most recently used
    expect(await b.workers(a)).toHaveLength(1)
    const wd = await turn(d)
    // c was the least recently used: it made room for d; a is still warm.
    expect(await isRunning(wc.pid)).toBe(false)
    expect(await isRunning(wa.pid)).toBe(true)
    expect(await isRunning(wd.pid)).toBe(true)
  })

  test('a stopping broker stops its idle workers', async () => {
    const b = await startTurnBroker({
      db: databases()[0]!,
      transport,
      env: { CCBROKER_WORKER_IDLE_MS: '600000' },
    })
    const sessionId = newSessionId('stop')
    const t = await b.enqueue({
      session_id: sessionId,
      workspace_id: 'ws-stop',
      user_message: 'hi',
    })
    await b.follow(t.turn_id)
    const [worker] = await b.workers(sessionId)
    expect(await isRunning(worker!.pid)).toBe(true)
    await b.stop()
    expect(await isRunning(worker!.pid)).toBe(false)
  })
})

describe.each(TRANSPORTS)(
  'a warm session and two brokers on one Postgres database, %s',
  (transport) => {
    const pg = databases().find((d) => d.name === 'postgres')
    test.skipIf(!pg)(
      'the broker keeping the worker warm runs the next turn whichever broker took the request: one process for the session',
      async () => {
        await using a = await startTurnBroker({
          db: pg!,
          transport,
          env: { CCBROKER_WORKER_IDLE_MS: '600000', CCBROKER_STOP_GRACE_MS: '10000' },
        })
        const sessionId = newSessionId('rep')
        const body = (text: string) =>
          JSON.stringify({ session_id: sessionId, workspace_id: 'ws-rep', user_message: text })
        const post = async (url: string, text: string) => {
          const res = await fetch(`${url}/api/v2/turns`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: body(text),
          })
          expect(res.status).toBe(202)
          return a.follow(((await res.json()) as { turn_id: string }).turn_id)
        }
        await post(a.url, 'one')
        const [warm] = await a.workers(sessionId)

        // A second replica, once the first keeps the session's worker warm.
        const other = await startReplica(a, transport, { CCBROKER_WORKER_IDLE_MS: '600000' })
        try {
          // Asked of the other broker, run by the one holding the process.
          const two = await post(other.url, 'two')
          expect(reply(two)).toBe('echo: two (history: 1)')
          expect(await a.workers(sessionId)).toHaveLength(1)
          expect(await isRunning(warm!.pid)).toBe(true)
        } finally {
          await other.stop()
        }
      },
    )
  },
)
