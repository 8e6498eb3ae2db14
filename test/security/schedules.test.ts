import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { databases } from '../helpers/databases.ts'
import { storedCounts } from '../helpers/stored.ts'
import { newSessionId, startTurnBroker, type TurnBroker } from '../helpers/turns.ts'
import { connectWorkerMcp, hangingTurn, mcpUrl, textOf } from '../helpers/worker-mcp.ts'

const WORKSPACE = 'ws-sched-bounds'
const inAnHour = () => new Date(Date.now() + 3_600_000).toISOString()

describe.each(databases())('schedule bounds on $name', (db) => {
  let b: TurnBroker
  beforeAll(async () => {
    b = await startTurnBroker({
      db,
      transport: 'stdio',
      env: { CCBROKER_SCHEDULE_MAX_TASKS: '3' },
    })
  })
  afterAll(() => b.stop())

  async function workerTools(prefix: string) {
    const sessionId = newSessionId(prefix)
    const { turnId, token } = await hangingTurn(b, sessionId, WORKSPACE)
    const mcp = await connectWorkerMcp(mcpUrl(b, sessionId), token)
    return {
      sessionId,
      mcp,
      async [Symbol.asyncDispose]() {
        await mcp.close()
        await b.api('POST', `/api/turns/${turnId}/cancel`)
      },
    }
  }

  test('a cron more frequent than the minimum interval (60 s) is refused as an isError result, nothing stored', async () => {
    await using w = await workerTools('fast')
    const before = await storedCounts(b.broker.database.db)
    for (const [cron, every] of [
      ['* * * * * *', 1],
      ['*/30 * * * * *', 30],
      ['0,1 * * * *', 60],
    ] as const) {
      const result = await w.mcp.call('create_scheduled_task', { prompt: 'ping', cron })
      if (every < 60) {
        expect(result.isError).toBe(true)
        expect(textOf(result)).toBe(
          `cron "${cron}" fires every ${every} s, more often than the minimum interval of 60 s; ` +
            'give a slower schedule',
        )
      } else expect(result.isError).toBeFalsy()
    }
    const after = await storedCounts(b.broker.database.db)
    expect(after.scheduled_tasks).toBe(before.scheduled_tasks! + 1)
  })

  test('a session may have 3 active tasks (CCBROKER_SCHEDULE_MAX_TASKS); the fourth is refused until one is cancelled', async () => {
    await using w = await workerTools('many')
    const ids: string[] = []
    for (let i = 0; i < 3; i++) {
      const r = await w.mcp.call('create_scheduled_task', { prompt: `p${i}`, run_at: inAnHour() })
      ids.push(JSON.parse(textOf(r)).task_id)
    }
    const before = await storedCounts(b.broker.database.db)
    const fourth = await w.mcp.call('create_scheduled_task', { prompt: 'p3', run_at: inAnHour() })
    expect(fourth.isError).toBe(true)
    expect(textOf(fourth)).toBe(
      'this session already has 3 active scheduled tasks (limit 3); cancel one before creating another',
    )
    expect(await storedCounts(b.broker.database.db)).toEqual(before)
    // An operator cancels one from outside; then there is room again.
    const cancelled = await b.api('POST', `/v1/schedules/${ids[0]}/cancel`)
    expect(cancelled.status).toBe(200)
    expect(cancelled.body.task).toEqual(
      expect.objectContaining({ task_id: ids[0], state: 'cancelled', session_id: w.sessionId }),
    )
    const again = await w.mcp.call('create_scheduled_task', { prompt: 'p3', run_at: inAnHour() })
    expect(again.isError).toBeFalsy()
  })

  test('external routes: a session’s tasks, all tasks by workspace and state, cancel; unknown → 404, twice → 409', async () => {
    await using w = await workerTools('ext')
    const r = await w.mcp.call('create_scheduled_task', { prompt: 'hello', run_at: inAnHour() })
    const task = JSON.parse(textOf(r))
    const listed = await b.api('GET', `/v1/sessions/${w.sessionId}/schedules`)
    expect(listed).toEqual({ status: 200, headers: expect.any(Headers), body: { data: [task] } })
    const all = await b.api('GET', `/v1/schedules?workspace_id=${WORKSPACE}&state=active&limit=500`)
    expect(all.body.data).toContainEqual(task)
    const states = all.body.data.map((t: any) => t.state)
    expect(states).toEqual(states.map(() => 'active'))
    const unknown = newSessionId()
    expect(await b.api('GET', `/v1/sessions/${unknown}/schedules`)).toEqual({
      status: 404,
      headers: expect.any(Headers),
      body: { error: `session ${unknown} not found` },
    })
    expect((await b.api('POST', `/v1/schedules/${task.task_id}/cancel`)).status).toBe(200)
    expect(await b.api('POST', `/v1/schedules/${task.task_id}/cancel`)).toEqual({
      status: 409,
      headers: expect.any(Headers),
      body: { error: `scheduled task ${task.task_id} is already cancelled` },
    })
    expect(await b.api('POST', '/v1/schedules/task_nope/cancel')).toEqual({
      status: 404,
      headers: expect.any(Headers),
      body: { error: 'no scheduled task task_nope' },
    })
  })

  test('the schedule routes take the API key when keys are set', async () => {
    await using keyed = await startTurnBroker({
      db,
      transport: 'stdio',
      env: { CCBROKER_API_KEYS: 'key-0123456789abcdef' },
    })
    for (const [method, path] of [
      ['GET', '/v1/schedules'],
      ['GET', '/v1/sessions/s/schedules'],
      ['POST', '/v1/schedules/task_x/cancel'],
    ] as const) {
      const res = await keyed.api(method, path)
      expect(res.status).toBe(401)
      expect(res.headers.get('www-authenticate')).toBe('Bearer')
    }
  })
})
