import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import postgres from 'postgres'
import { startWorkerControl } from '../../src/testing/worker-control.ts'
import { TEST_SECRET } from '../helpers/broker.ts'
import { spawnBroker, type BrokerProcess } from '../helpers/broker-process.ts'
import { databases } from '../helpers/databases.ts'
import { pgBinDir, startPgCluster } from '../helpers/pg-cluster.ts'
import { newSessionId, scenario, scenarioClaudeBin } from '../helpers/turns.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { until } from '../helpers/until.ts'

const pg = databases().find((d) => d.name === 'postgres')
const pgBin = await pgBinDir()

describe.skipIf(!pgBin)('SIGTERM during a Postgres outage', () => {
  test('the broker still exits 0, and the turn it could not hand back is run again by the next broker', async () => {
    await using cluster = await startPgCluster()
    await using dir = await tempDir('ccb-term-')
    await using control = await startWorkerControl()
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir.path,
      CCBROKER_PORT: '0',
      CCBROKER_DATA_DIR: join(dir.path, 'data'),
      CCBROKER_DATABASE_URL: cluster.url,
      CCBROKER_JWT_SECRET: TEST_SECRET,
      CCBROKER_LOG_LEVEL: 'info',
      CCBROKER_CLAUDE_BIN: await scenarioClaudeBin(dir.path),
      CCBROKER_STOP_GRACE_MS: '300',
      CCBROKER_WORKER_ENV: `FAKE_CLAUDE_CONTROL_URL=${control.url}`,
    }
    const first = await spawnBroker(env)
    const sessionId = newSessionId('term')
    const held = control.hold(sessionId)
    const res = await first.api('POST', '/api/v2/turns', {
      session_id: sessionId,
      workspace_id: 'ws-term',
      user_message: 'through an outage',
      metadata: scenario('control'),
    })
    await held.arrived
    await cluster.stop('fast')
    expect(await first.stop()).toBe(0)
    expect(
      first
        .logs()
        .some((r) => r.msg === 'could not hand a running turn back; it will be recovered'),
    ).toBe(true)
    await cluster.start()
    await using second = await spawnBroker(env)
    const done = await until(
      async () => {
        const t = (await second.api('GET', `/api/turns/${res.body.turn_id}`)).body.turn
        return t?.state === 'done' ? t : null
      },
      { what: 'the turn to be run again and finish' },
    )
    expect(done).toEqual(expect.objectContaining({ state: 'done', attempts: 2, error: null }))
  })
})

describe.skipIf(!pg)('two replicas’ schedulers', () => {
  test('a task due every second fires once per due time, each firing with its own turn', async () => {
    await using dir = await tempDir('ccb-sched2-')
    const database = await pg!.create()
    const replicas: BrokerProcess[] = []
    try {
      const bin = await scenarioClaudeBin(dir.path)
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
            CCBROKER_CLAUDE_BIN: bin,
            CCBROKER_SCHEDULER_POLL_MS: '50',
            CCBROKER_WORKSPACE_DIR: join(dir.path, 'workspaces'),
          }),
        )
      const [a, b] = replicas as [BrokerProcess, BrokerProcess]
      const created = await a.api('POST', '/v1/sessions', { workspace_id: 'ws-sched2' })
      const sessionId = created.body.session.id as string
      // Written as a worker's create_scheduled_task would, minus the minimum-interval check.
      const sql = postgres(database.url!, { max: 1, onnotice: () => {} })
      const taskId = `task_${crypto.randomUUID().replaceAll('-', '')}`
      await sql`insert into scheduled_tasks (id, session_id, workspace_id, prompt, cron, state, next_run_at)
        values (${taskId}, ${sessionId}, 'ws-sched2', 'tick', '* * * * * *', 'active', now())`
      await until(
        async () =>
          (await sql`select count(*)::int as n from schedule_runs where task_id = ${taskId}`)[0]!
            .n >= 4,
        {
          what: 'four firings',
        },
      )
      expect((await b.api('POST', `/v1/schedules/${taskId}/cancel`)).status).toBe(200)
      const runs =
        await sql`select scheduled_for, turn_id, error from schedule_runs where task_id = ${taskId} order by scheduled_for`
      const turns = await sql`select id from turns where session_id = ${sessionId}`
      await sql.end()
      const due = runs.map((r) => new Date(r.scheduled_for as string).getTime())
      expect(new Set(due).size).toBe(due.length)
      expect(runs.map((r) => r.error)).toEqual(runs.map(() => null))
      expect(runs.map((r) => r.turn_id).sort()).toEqual(turns.map((t) => t.id).sort())
    } finally {
      for (const r of replicas) await r[Symbol.asyncDispose]()
      await database.drop()
    }
  })
})
