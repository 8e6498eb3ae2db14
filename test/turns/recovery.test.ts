import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { TEST_SECRET } from '../helpers/broker.ts'
import { databases } from '../helpers/databases.ts'
import { freePort, spawnBroker, type BrokerProcess } from '../helpers/broker-process.ts'
import { tempDir, type TempDir } from '../helpers/temp-dir.ts'
import {
  isRunning,
  newSessionId,
  readWorkerRecords,
  scenario,
  scenarioClaudeBin,
  TRANSPORTS,
} from '../helpers/turns.ts'
import { until } from '../helpers/until.ts'
import { startWorkerControl, type WorkerControl } from '../../src/testing/worker-control.ts'

const cases = databases().flatMap((db) => TRANSPORTS.map((transport) => ({ db, transport })))

describe.each(cases)(
  'a broker killed with turns in flight, on $db.name, $transport',
  ({ db, transport }) => {
    let dir: TempDir
    let database: { url: string | null; drop(): Promise<void> }
    let env: Record<string, string>
    let recordDir: string
    let control: WorkerControl
    const brokers: BrokerProcess[] = []
    const start = async () => {
      const broker = await spawnBroker(env)
      brokers.push(broker)
      return broker
    }
    // Two turns, started by the first broker: `short` finishes when re-run; `long` (a worker that
    // starts a child and waits forever) is still running when its second broker is killed too.
    const short = { session: newSessionId('short'), turn: '' }
    const long = { session: newSessionId('long'), turn: '' }
    // A third, cancelled while its broker was still stopping its (stubborn) worker.
    const cancelled = { session: newSessionId('cancel'), turn: '' }
    const workers = async (sessionId: string) => readWorkerRecords(recordDir, sessionId)
    const nthWorker = (sessionId: string, n: number) =>
      until(async () => (await workers(sessionId))[n], { what: `worker ${n} of ${sessionId}` })
    /** The `n`th worker of a `grandchild` turn, once it has started its child. */
    const childOf = (sessionId: string, n: number) =>
      until(async () => (await workers(sessionId)).filter((w) => w.grandchild_pid)[n], {
        what: `the child of worker ${n} of ${sessionId}`,
      })

    beforeAll(async () => {
      dir = await tempDir('ccb-restart-')
      recordDir = join(dir.path, 'records')
      await Bun.write(join(recordDir, '.keep'), '')
      database = await db.create()
      control = await startWorkerControl()
      env = {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: dir.path,
        CCBROKER_PORT: String(freePort()),
        CCBROKER_DATA_DIR: join(dir.path, 'data'),
        CCBROKER_LOG_LEVEL: 'info',
        CCBROKER_CLAUDE_BIN: await scenarioClaudeBin(dir.path),
        CCBROKER_WORKER_TRANSPORT: transport,
        CCBROKER_STOP_GRACE_MS: '300',
        CCBROKER_WORKER_ENV: `FAKE_CLAUDE_RECORD_DIR=${recordDir},FAKE_CLAUDE_CONTROL_URL=${control.url}`,
        ...(database.url
          ? { CCBROKER_DATABASE_URL: database.url, CCBROKER_JWT_SECRET: TEST_SECRET }
          : {}),
      }
    })
    afterAll(async () => {
      for (const b of brokers) await b[Symbol.asyncDispose]()
      // Whatever a test left running (it failed midway) is stopped here.
      for (const w of await readWorkerRecords(recordDir))
        if (await isRunning(w.pid)) process.kill(-w.pid, 'SIGKILL')
      await database.drop()
      await control.stop()
      await dir[Symbol.asyncDispose]()
    })

    test('a turn running when its broker is SIGKILLed is re-queued by the next broker, with turn_recovered, and runs to done; its old worker is killed', async () => {
      const first = await start()
      const enqueue = async (
        sessionId: string,
        text: string,
        metadata: Record<string, unknown>,
      ) => {
        const res = await first.api('POST', '/api/v2/turns', {
          session_id: sessionId,
          workspace_id: 'ws-restart',
          user_message: text,
          metadata,
        })
        expect(res.status).toBe(202)
        return res.body.turn_id as string
      }
      // The short turn's first worker stops at its turn's start: it is mid-turn at the kill.
      // Its re-run is not held and finishes.
      const held = control.hold(short.session)
      short.turn = await enqueue(short.session, 'finish me', scenario('control'))
      long.turn = await enqueue(long.session, 'take long', scenario('grandchild'))
      const [, oldShort, oldLong] = await Promise.all([
        held.arrived,
        nthWorker(short.session, 0),
        childOf(long.session, 0),
      ])
      cancelled.turn = await enqueue(cancelled.session, 'stop me', scenario('stubborn'))
      const oldCancelled = await nthWorker(cancelled.session, 0)
      const cancelling = first.api('POST', `/api/turns/${cancelled.turn}/cancel`).catch(() => null)
      // Interrupt and end_session were ignored; the broker is at SIGTERM (ignored too) when killed.
      await until(
        () =>
          first
            .logs()
            .some((r) => r.turnId === cancelled.turn && r.line === 'fake-claude: ignoring SIGTERM'),
        { what: 'the cancel to reach SIGTERM' },
      )
      await first.kill()
      expect(await cancelling).toBe(null)
      // A stdio worker writes nothing once its turn stalls, so it outlives its broker; a CCR one
      // may die of the broken pipe when it logs its lost connection.
      if (transport === 'stdio') expect(await isRunning(oldCancelled.pid)).toBe(true)
      // Workers live in their own process groups, so the broker's death leaves them (or at least
      // the long one's child) behind: the next broker must stop them.
      expect(await isRunning(oldLong.grandchild_pid!)).toBe(true)

      const second = await start()
      const done = await until(
        async () => {
          const t = (await second.api('GET', `/api/turns/${short.turn}`)).body.turn
          return ['done', 'failed', 'cancelled'].includes(t.state) ? t : null
        },
        { what: 'the short turn to finish', deadlineMs: 40_000 },
      )
      expect(done).toEqual(
        expect.objectContaining({ id: short.turn, state: 'done', attempts: 2, error: null }),
      )
      expect(done.result.result).toStartWith('echo: finish me')

      const events = (await second.api('GET', `/v1/sessions/${short.session}/events?limit=1000`))
        .body.data as Record<string, any>[]
      const mine = events.filter((e) => e.turn_id === short.turn && e.source === 'broker')
      expect(mine.map((e) => e.payload.type).filter((t) => !t.startsWith('workspace_'))).toEqual([
        'turn_started',
        'turn_recovered',
        'turn_started',
        'done',
      ])
      expect(mine.find((e) => e.event_type === 'turn_recovered')!.payload).toEqual({
        type: 'turn_recovered',
        uuid: expect.any(String),
        turn_id: short.turn,
        attempt: 1,
        reason: 'the broker running it stopped before it finished',
      })
      expect(
        mine.filter((e) => e.event_type === 'turn_started').map((e) => e.payload.attempt),
      ).toEqual([1, 2])
      // The re-run got the message again under a new uuid (a worker skips a uuid it has seen),
      // after the recovery.
      const sent = events.filter((e) => e.turn_id === short.turn && e.event_type === 'user')
      expect(sent.map((e) => [e.source, e.payload.message])).toEqual([
        ['client', { role: 'user', content: 'finish me' }],
        ['client', { role: 'user', content: 'finish me' }],
      ])
      expect(sent[1]!.event_id).not.toBe(sent[0]!.event_id)
      expect(sent[1]!.sequence_num).toBeGreaterThan(
        mine.find((e) => e.event_type === 'turn_recovered')!.sequence_num,
      )

      // The new broker killed what the old one left behind, and says so.
      expect(await isRunning(oldLong.grandchild_pid!)).toBe(false)
      expect(await isRunning(oldLong.pid)).toBe(false)
      expect(await isRunning(oldShort.pid)).toBe(false)
      const killed = second
        .logs()
        .filter((r) => r.msg === 'killing the worker a stopped broker left behind')
        .map((r) => r.pid)
      expect(killed).toContain(oldLong.pid)
      if (transport === 'stdio') expect(killed).toContain(oldCancelled.pid)
      expect(await isRunning(oldCancelled.pid)).toBe(false)
    })

    test('a turn whose cancel its killed broker had not finished is cancelled by the next one, not run again', async () => {
      const second = brokers.at(-1)!
      expect(cancelled.turn).not.toBe('')
      const message = 'cancelled; the broker running it stopped before its worker did'
      expect((await second.api('GET', `/api/turns/${cancelled.turn}`)).body.turn).toEqual(
        expect.objectContaining({ state: 'cancelled', attempts: 1, error: message, result: null }),
      )
      const events = (
        await second.api('GET', `/v1/sessions/${cancelled.session}/events?limit=1000`)
      ).body.data as Record<string, any>[]
      expect(events.at(-1)!.payload).toEqual({
        type: 'done',
        uuid: expect.any(String),
        turn_id: cancelled.turn,
        state: 'cancelled',
        error: message,
        result: null,
      })
      // Its stubborn worker was killed, and no other one started.
      const workers = await readWorkerRecords(recordDir, cancelled.session)
      expect(workers).toHaveLength(1)
      expect(await isRunning(workers[0]!.pid)).toBe(false)
    })

    test('a turn whose broker is killed a second time fails with a clear error instead of running again', async () => {
      const second = brokers.at(-1)!
      expect(long.turn).not.toBe('')
      // The long turn runs again under the second broker: attempt 2, a new worker.
      const rerun = await childOf(long.session, 1)
      const running = (await second.api('GET', `/api/turns/${long.turn}`)).body.turn
      expect(running).toEqual(expect.objectContaining({ state: 'running', attempts: 2 }))
      await second.kill()
      expect(await isRunning(rerun.grandchild_pid!)).toBe(true)

      const third = await start()
      const message = 'the broker running this turn stopped twice (crash or kill); not retried'
      const failed = (await third.api('GET', `/api/turns/${long.turn}`)).body.turn
      expect(failed).toEqual(
        expect.objectContaining({ id: long.turn, state: 'failed', attempts: 2, error: message }),
      )
      const events = (await third.api('GET', `/v1/sessions/${long.session}/events?limit=1000`)).body
        .data as Record<string, any>[]
      const tail = events.filter((e) => e.turn_id === long.turn).slice(-2)
      expect(tail.map((e) => e.payload)).toEqual([
        { type: 'error', uuid: expect.any(String), turn_id: long.turn, message },
        {
          type: 'done',
          uuid: expect.any(String),
          turn_id: long.turn,
          state: 'failed',
          error: message,
          result: null,
        },
      ])
      expect(await isRunning(rerun.grandchild_pid!)).toBe(false)
      expect(await isRunning(rerun.pid)).toBe(false)
      expect(
        third
          .logs()
          .filter((r) => r.msg === 'killing the worker a stopped broker left behind')
          .map((r) => r.pid),
      ).toEqual([rerun.pid])
      // The broker goes on: the session takes a new turn.
      const next = await third.api('POST', '/api/v2/turns', {
        session_id: long.session,
        workspace_id: 'ws-restart',
        user_message: 'after the failure',
      })
      expect(next.status).toBe(202)
      const after = await until(
        async () => {
          const t = (await third.api('GET', `/api/turns/${next.body.turn_id}`)).body.turn
          return ['done', 'failed'].includes(t.state) ? t : null
        },
        { what: 'the next turn' },
      )
      expect(after.state).toBe('done')
    })
  },
)
