import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { startWorkerControl, type WorkerControl } from '../../src/testing/worker-control.ts'
import { TEST_SECRET } from '../helpers/broker.ts'
import { spawnBroker, type BrokerProcess } from '../helpers/broker-process.ts'
import { databases } from '../helpers/databases.ts'
import { followAcross, logOf, startWriters } from '../helpers/fault-load.ts'
import {
  isRunning,
  newSessionId,
  readWorkerRecords,
  scenario,
  scenarioClaudeBin,
  TRANSPORTS,
} from '../helpers/turns.ts'
import { tempDir, type TempDir } from '../helpers/temp-dir.ts'
import { until } from '../helpers/until.ts'

const pg = databases().find((d) => d.name === 'postgres')
/** Runs a broker under another host name (a UTS namespace; needs root, as in CI). */
const elsewhere =
  process.getuid?.() === 0 && Bun.which('unshare')
    ? ['unshare', '--uts', 'sh', '-c', 'hostname cc-broker-elsewhere && exec "$@"', 'sh']
    : undefined

describe.skipIf(!pg).each(TRANSPORTS)('a replica killed with -9, %s', (transport) => {
  let dir: TempDir
  let database: { url: string | null; drop(): Promise<void> }
  let control: WorkerControl
  let env: (name: string) => Promise<Record<string, string>>
  beforeAll(async () => {
    dir = await tempDir('ccb-dead-')
    database = await pg!.create()
    control = await startWorkerControl()
    const records = join(dir.path, 'records')
    await Bun.write(join(records, '.keep'), '')
    const bin = await scenarioClaudeBin(dir.path)
    env = async (name) => ({
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir.path,
      CCBROKER_PORT: '0',
      CCBROKER_DATA_DIR: join(dir.path, name),
      CCBROKER_DATABASE_URL: database.url!,
      CCBROKER_JWT_SECRET: TEST_SECRET,
      CCBROKER_LOG_LEVEL: 'info',
      CCBROKER_CLAUDE_BIN: bin,
      CCBROKER_WORKER_TRANSPORT: transport,
      CCBROKER_STOP_GRACE_MS: '300',
      // Replicas share the workspace store, as a stdio session's transcript lives there.
      CCBROKER_WORKSPACE_DIR: join(dir.path, 'workspaces'),
      CCBROKER_WORKER_ENV: JSON.stringify({
        FAKE_CLAUDE_RECORD_DIR: records,
        FAKE_CLAUDE_CONTROL_URL: control.url,
      }),
    })
  })
  afterAll(async () => {
    for (const w of await readWorkerRecords(join(dir.path, 'records')))
      if (await isRunning(w.pid)) process.kill(-w.pid, 'SIGKILL')
    await control.stop()
    await database.drop()
    await dir[Symbol.asyncDispose]()
  })

  test('the turn it was running resumes on the other replica within 5 s at the default 30 s lease, and finishes there', async () => {
    // The dying replica has a host name of its own, as on another machine: the survivor cannot
    // look at its pid and must see it gone by its presence lock.
    const a = await spawnBroker(await env('a'), { prefix: elsewhere })
    let b: BrokerProcess | null = null
    try {
      const sessionId = newSessionId('dead')
      const held = control.hold(sessionId)
      const res = await a.api('POST', '/api/v2/turns', {
        session_id: sessionId,
        workspace_id: 'ws-dead',
        user_message: 'survive this',
        metadata: scenario('control'),
      })
      expect(res.status).toBe(202)
      await held.arrived
      // The second replica comes up while the first runs the turn, then the first dies.
      b = await spawnBroker(await env('b'))
      const again = control.hold(sessionId)
      await a.kill()
      const killed = Date.now()
      await again.arrived
      const resumedMs = Date.now() - killed
      again.release()
      const done = await until(
        async () => {
          const t = (await b!.api('GET', `/api/turns/${res.body.turn_id}`)).body.turn
          return t.state === 'done' ? t : null
        },
        { what: 'the turn to finish on the surviving replica' },
      )
      expect(done).toEqual(expect.objectContaining({ state: 'done', attempts: 2, error: null }))
      const events = await logOf(b.url, sessionId)
      expect(events.length).toBeGreaterThan(0)
      expect(resumedMs).toBeLessThan(5_000)
    } finally {
      await a[Symbol.asyncDispose]()
      await b?.[Symbol.asyncDispose]()
    }
  })

  test('a replica that is alive but stalled (SIGSTOP) keeps its turn: nobody else takes it, and it finishes when it goes on', async () => {
    const a = await spawnBroker(await env('slow-a'), { prefix: elsewhere })
    let b: BrokerProcess | null = null
    try {
      const sessionId = newSessionId('stalled')
      const held = control.hold(sessionId)
      const res = await a.api('POST', '/api/v2/turns', {
        session_id: sessionId,
        workspace_id: 'ws-dead',
        user_message: 'wait for me',
        metadata: scenario('control'),
      })
      await held.arrived
      b = await spawnBroker({ ...(await env('slow-b')), CCBROKER_LOG_LEVEL: 'debug' })
      a.proc.kill('SIGSTOP')
      // The survivor looks again and again, past the presence grace (1.5 s): the stalled
      // replica still holds its lock every time.
      const alive = () =>
        b!.logs().filter((r) => r.msg === 'another broker holds its presence lock').length
      const before = alive()
      const stoppedAt = Date.now()
      await until(() => alive() >= before + 6 && Date.now() - stoppedAt > 2_000, {
        what: 'the survivor to see the stalled replica alive, past the grace',
      })
      const during = (await b.api('GET', `/api/turns/${res.body.turn_id}`)).body.turn
      expect(during).toEqual(expect.objectContaining({ state: 'running', attempts: 1 }))
      a.proc.kill('SIGCONT')
      held.release()
      const done = await until(
        async () => {
          const t = (await b!.api('GET', `/api/turns/${res.body.turn_id}`)).body.turn
          return t.state === 'done' ? t : null
        },
        { what: 'the turn to finish on its own replica' },
      )
      expect(done).toEqual(expect.objectContaining({ state: 'done', attempts: 1, error: null }))
    } finally {
      a.proc.kill('SIGCONT')
      await a[Symbol.asyncDispose]()
      await b?.[Symbol.asyncDispose]()
    }
  })
})

describe.skipIf(!pg)('listeners and writers across replicas', () => {
  test('listeners of a replica killed with -9 resume on another with no gap and no duplicate', async () => {
    await using dir = await tempDir('ccb-listen-')
    const database = await pg!.create()
    const replicas: BrokerProcess[] = []
    try {
      for (const name of ['a', 'b'])
        replicas.push(
          await spawnBroker({
            PATH: process.env.PATH ?? '/usr/bin:/bin',
            HOME: dir.path,
            CCBROKER_PORT: '0',
            CCBROKER_DATA_DIR: join(dir.path, name),
            CCBROKER_DATABASE_URL: database.url!,
            CCBROKER_JWT_SECRET: TEST_SECRET,
            CCBROKER_LOG_LEVEL: 'info',
          }),
        )
      const [a, b] = replicas as [BrokerProcess, BrokerProcess]
      const created = await b.api('POST', '/v1/sessions', { workspace_id: 'ws-listen' })
      const sessionId = created.body.session.id as string
      const bridge = await b.api('POST', `/v1/sessions/${sessionId}/bridge`)
      // Listening on the replica that dies, writing only through the one that lives.
      const listeners = [0, 1, 2].map(() => followAcross({ urls: [a.url, b.url], sessionId }))
      const writers = startWriters({
        urls: [b.url],
        sessionId,
        token: bridge.body.worker_jwt,
        epoch: bridge.body.worker_epoch,
        writers: 2,
        batch: 10,
      })
      await until(() => writers.acked.ids.size >= 100, { what: 'events before the kill' })
      await a.kill()
      await until(() => writers.acked.ids.size >= 300, { what: 'events after the kill' })
      await writers.stop()
      const all = (await logOf(b.url, sessionId)).map((e) => e.sequence_num)
      for (const l of listeners) {
        await until(() => l.seqs.length >= all.length, { what: 'a listener to catch up' })
        await l.stop()
        expect(l.seqs).toEqual(all)
        expect(l.reconnects()).toBeGreaterThan(0)
      }
    } finally {
      for (const r of replicas) await r[Symbol.asyncDispose]()
      await database.drop()
    }
  })

  test('the same batch posted to two replicas at once is stored once; a stale epoch is refused by both', async () => {
    await using dir = await tempDir('ccb-dup-')
    const database = await pg!.create()
    const replicas: BrokerProcess[] = []
    try {
      for (const name of ['a', 'b'])
        replicas.push(
          await spawnBroker({
            PATH: process.env.PATH ?? '/usr/bin:/bin',
            HOME: dir.path,
            CCBROKER_PORT: '0',
            CCBROKER_DATA_DIR: join(dir.path, name),
            CCBROKER_DATABASE_URL: database.url!,
            CCBROKER_JWT_SECRET: TEST_SECRET,
            CCBROKER_LOG_LEVEL: 'info',
          }),
        )
      const [a, b] = replicas as [BrokerProcess, BrokerProcess]
      const created = await a.api('POST', '/v1/sessions', { workspace_id: 'ws-dup' })
      const sessionId = created.body.session.id as string
      const first = await a.api('POST', `/v1/sessions/${sessionId}/bridge`)
      const post = (url: string, token: string, epoch: number, events: unknown[]) =>
        fetch(`${url}/v1/sessions/${sessionId}/worker/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ worker_epoch: epoch, events }),
        }).then((r) => r.status)
      for (let round = 0; round < 10; round++) {
        const events = Array.from({ length: 20 }, () => ({
          payload: { type: 'assistant', uuid: crypto.randomUUID() },
        }))
        const statuses = await Promise.all(
          [a.url, b.url].map((u) =>
            post(u, first.body.worker_jwt, first.body.worker_epoch, events),
          ),
        )
        expect(statuses).toEqual([200, 200])
      }
      const ids = (await logOf(a.url, sessionId)).map((e) => e.event_id)
      expect(ids).toHaveLength(200)
      expect(new Set(ids).size).toBe(200)
      // A newer generation: the old one's writes are 409 on either replica, nothing stored.
      await b.api('POST', `/v1/sessions/${sessionId}/bridge`)
      const stale = [{ payload: { type: 'assistant', uuid: crypto.randomUUID() } }]
      for (const url of [a.url, b.url])
        expect(await post(url, first.body.worker_jwt, first.body.worker_epoch, stale)).toBe(409)
      expect(await logOf(b.url, sessionId)).toHaveLength(200)
    } finally {
      for (const r of replicas) await r[Symbol.asyncDispose]()
      await database.drop()
    }
  })
})
