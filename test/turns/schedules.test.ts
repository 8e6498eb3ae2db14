import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import {
  cancelScheduledTask,
  insertScheduledTask,
  listScheduledTasks,
  listScheduleRuns,
} from '../../src/db/repos/schedules.ts'
import { startTestBroker } from '../helpers/broker.ts'
import { databases } from '../helpers/databases.ts'
import { newSessionId, scenario, startTurnBroker, type TurnBroker } from '../helpers/turns.ts'
import { until } from '../helpers/until.ts'
import { connectWorkerMcp, hangingTurn, mcpUrl, textOf } from '../helpers/worker-mcp.ts'

const WORKSPACE = 'ws-sched'
// Every-second crons are refused by default (60 s); these tests need them.
const POLL = { CCBROKER_SCHEDULER_POLL_MS: '50', CCBROKER_SCHEDULE_MIN_INTERVAL_SECONDS: '1' }
const ISO = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)

type Mcp = Awaited<ReturnType<typeof connectWorkerMcp>>

/** A tool's JSON answer (the schedule tools answer pretty-printed JSON). */
async function callJson(mcp: Mcp, name: string, args: Record<string, unknown>) {
  const result = await mcp.call(name, args)
  if (result.isError) throw new Error(`${name} failed: ${textOf(result)}`)
  return JSON.parse(textOf(result))
}

/** A session's turns, oldest first. */
async function sessionTurns(b: TurnBroker, sessionId: string): Promise<Record<string, any>[]> {
  const res = await b.api('GET', `/v1/sessions/${sessionId}/turns?limit=500`)
  expect(res.status).toBe(200)
  return (res.body.data as Record<string, any>[]).reverse()
}

const scheduledBy = (turns: Record<string, any>[], taskId: string) =>
  turns.filter((t) => t.metadata.scheduled_task_id === taskId)

describe.each(databases())('scheduled tasks on $name', (db) => {
  let b: TurnBroker
  beforeAll(async () => {
    b = await startTurnBroker({ db, transport: 'stdio', env: POLL })
  })
  afterAll(() => b.stop())

  /** A session with a turn that holds its worker (and so its MCP server) until `end()`. */
  async function sessionWithTools(prefix: string) {
    const sessionId = newSessionId(prefix)
    const { turnId, token } = await hangingTurn(b, sessionId, WORKSPACE)
    const mcp = await connectWorkerMcp(mcpUrl(b, sessionId), token)
    return {
      sessionId,
      turnId,
      mcp,
      async end() {
        await mcp.close()
        const res = await b.api('POST', `/api/turns/${turnId}/cancel`)
        expect(res.body.turn.state).toBe('cancelled')
      },
    }
  }

  test('create_scheduled_task with run_at a second ahead: one turn with its prompt runs in the owning session, once, and the task is done with runs 1', async () => {
    const s = await sessionWithTools('sched-once')
    const runAt = new Date(Date.now() + 1000).toISOString()
    const created = await callJson(s.mcp, 'create_scheduled_task', {
      prompt: 'scheduled hello',
      run_at: runAt,
    })
    const taskId = created.task_id as string
    expect(created).toEqual({
      task_id: expect.stringMatching(/^task_/),
      prompt: 'scheduled hello',
      cron: null,
      run_at: runAt,
      timezone: 'UTC',
      state: 'active',
      next_run_at: runAt,
      runs: 0,
      last_run_at: null,
      session_id: s.sessionId,
      workspace_id: WORKSPACE,
      created_at: ISO,
    })

    // It fires while the holding turn still runs: its turn waits in the session's queue.
    const [fired] = await until(
      async () => {
        const tasks = await callJson(s.mcp, 'list_scheduled_tasks', {})
        return tasks[0]?.state === 'done' ? tasks : null
      },
      { what: 'the task to fire' },
    )
    expect(fired).toEqual({
      ...created,
      state: 'done',
      next_run_at: null,
      runs: 1,
      last_run_at: ISO,
    })
    expect(Date.parse(fired.last_run_at)).toBeGreaterThanOrEqual(Date.parse(runAt))
    await s.end()

    const [scheduled] = scheduledBy(await sessionTurns(b, s.sessionId), taskId)
    expect(scheduled).toEqual(expect.objectContaining({ session_id: s.sessionId }))
    const done = await b.waitState(scheduled!.id, ['done', 'failed', 'cancelled'])
    expect(done.state).toBe('done')
    const events = (await b.api('GET', `/v1/sessions/${s.sessionId}/events?limit=1000`)).body
      .data as Record<string, any>[]
    const ofTurn = events.filter((e) => e.turn_id === scheduled!.id)
    expect(ofTurn.find((e) => e.event_type === 'user')?.payload.message).toEqual({
      role: 'user',
      content: 'scheduled hello',
    })
    expect(ofTurn.find((e) => e.event_type === 'assistant')?.payload.message.content).toEqual([
      { type: 'text', text: 'echo: scheduled hello (history: 1)' },
    ])

    // Long after its time (a whole turn later), it has still fired exactly once.
    const turns = await sessionTurns(b, s.sessionId)
    expect(turns.map((t) => [t.id, t.state])).toEqual([
      [s.turnId, 'cancelled'],
      [scheduled!.id, 'done'],
    ])
    const runs = await listScheduleRuns(b.broker.database.db, taskId)
    expect(runs).toEqual([
      {
        id: expect.any(Number),
        taskId,
        scheduledFor: new Date(runAt),
        turnId: scheduled!.id,
        error: null,
        createdAt: expect.any(Date),
      },
    ])
  })

  test('a six-field cron ("* * * * * *", every second) fires repeatedly, each firing recorded once with its own turn, until cancel_scheduled_task stops it', async () => {
    const s = await sessionWithTools('sched-cron')
    const created = await callJson(s.mcp, 'create_scheduled_task', {
      prompt: 'tick',
      cron: '* * * * * *',
      timezone: 'Europe/Berlin',
    })
    const taskId = created.task_id as string
    expect(created).toEqual({
      task_id: expect.stringMatching(/^task_/),
      prompt: 'tick',
      cron: '* * * * * *',
      run_at: null,
      timezone: 'Europe/Berlin',
      state: 'active',
      next_run_at: expect.stringMatching(/\.000Z$/),
      runs: 0,
      last_run_at: null,
      session_id: s.sessionId,
      workspace_id: WORKSPACE,
      created_at: ISO,
    })
    await until(async () => (await callJson(s.mcp, 'list_scheduled_tasks', {}))[0].runs >= 3, {
      what: 'three firings',
    })
    const cancelled = await callJson(s.mcp, 'cancel_scheduled_task', { task_id: taskId })
    expect(cancelled).toEqual({
      ...created,
      state: 'cancelled',
      next_run_at: null,
      runs: expect.any(Number),
      last_run_at: ISO,
    })

    // A one-shot due after the cron's next second has fired: the scheduler has looked since.
    const marker = await callJson(s.mcp, 'create_scheduled_task', {
      prompt: 'marker',
      run_at: new Date(Date.now() + 1500).toISOString(),
    })
    await until(
      async () =>
        (await callJson(s.mcp, 'list_scheduled_tasks', {})).find(
          (t: { task_id: string }) => t.task_id === marker.task_id,
        ).state === 'done',
      { what: 'the marker task to fire' },
    )
    const [after] = (await callJson(s.mcp, 'list_scheduled_tasks', {})).filter(
      (t: { task_id: string }) => t.task_id === taskId,
    )
    expect(after).toEqual(cancelled)

    const runs = await listScheduleRuns(b.broker.database.db, taskId)
    const turns = scheduledBy(await sessionTurns(b, s.sessionId), taskId)
    expect(runs).toHaveLength(cancelled.runs)
    expect(turns).toHaveLength(cancelled.runs)
    expect(runs.map((r) => r.turnId).sort()).toEqual(turns.map((t) => t.id).sort())
    expect(runs.map((r) => r.error)).toEqual(runs.map(() => null))
    // Whole seconds, each later than the one before: every due time fired once.
    const due = runs.map((r) => r.scheduledFor.getTime())
    expect(due.map((t) => t % 1000)).toEqual(due.map(() => 0))
    for (let i = 1; i < due.length; i++) expect(due[i]!).toBeGreaterThan(due[i - 1]!)
    await s.end()
  })

  test('bad schedules come back as isError results that say what to give instead, and store nothing', async () => {
    const s = await sessionWithTools('sched-bad')
    const inAMinute = new Date(Date.now() + 60_000).toISOString()
    const cases: [Record<string, unknown>, string][] = [
      [
        { prompt: 'p', cron: 'every minute' },
        'cron "every minute" is invalid (CronPattern: invalid configuration format ' +
          "('every minute'), exactly five, six, or seven space separated parts are required.); " +
          'give five fields, ' +
          'minute hour day-of-month month day-of-week, e.g. "0 9 * * 1-5" for 09:00 on weekdays',
      ],
      [
        { prompt: 'p', cron: '61 * * * *' },
        'cron "61 * * * *" is invalid (CronPattern: Invalid value for minute: 61); ' +
          'give five fields, ' +
          'minute hour day-of-month month day-of-week, e.g. "0 9 * * 1-5" for 09:00 on weekdays',
      ],
      [
        { prompt: 'p', cron: '0 9 * * *', timezone: 'Mars/Olympus_Mons' },
        'timezone "Mars/Olympus_Mons" is not an IANA time zone (e.g. Europe/Berlin)',
      ],
      [
        { prompt: 'p', cron: '0 9 * * *', run_at: inAMinute },
        'give exactly one of cron (repeating) or run_at (one time)',
      ],
      [{ prompt: 'p' }, 'give exactly one of cron (repeating) or run_at (one time)'],
      // The schema's own checks answer the same way (the SDK validates before the handler).
      [
        { cron: '0 9 * * *' },
        'MCP error -32602: Input validation error: Invalid arguments for tool ' +
          'create_scheduled_task: Invalid input: expected string, received undefined at prompt',
      ],
      [
        { prompt: 'p', run_at: 'tomorrow at nine' },
        'run_at "tomorrow at nine" is not an ISO 8601 time with Z or an offset ' +
          '(e.g. 2026-12-01T09:00:00Z or 2026-12-01T10:00:00+01:00)',
      ],
      // Without an offset the time would be read in the broker's zone, not the caller's.
      [
        { prompt: 'p', run_at: '2030-12-01T09:00:00' },
        'run_at "2030-12-01T09:00:00" is not an ISO 8601 time with Z or an offset ' +
          '(e.g. 2026-12-01T09:00:00Z or 2026-12-01T10:00:00+01:00)',
      ],
      [
        { prompt: 'p', run_at: '2020-01-01T09:00:00+01:00' },
        expect.stringMatching(
          /^run_at 2020-01-01T08:00:00\.000Z is in the past \(now \S+\); give a future time$/,
        ),
      ],
    ]
    for (const [args, text] of cases)
      expect({ args, result: await s.mcp.call('create_scheduled_task', args) }).toEqual({
        args,
        result: { content: [{ type: 'text', text }], isError: true },
      })
    expect(await s.mcp.call('cancel_scheduled_task', { task_id: 'task_nope' })).toEqual({
      content: [{ type: 'text', text: 'no scheduled task task_nope in this session' }],
      isError: true,
    })
    expect(await callJson(s.mcp, 'list_scheduled_tasks', {})).toEqual([])
    await s.end()
  })
})

const postgres = databases().find((d) => d.name === 'postgres')

describe.skipIf(!postgres)('scheduled tasks with two brokers on one Postgres database', () => {
  test('tasks due now fire exactly once each: one schedule_runs row and one turn per due time', async () => {
    const env = { ...POLL, CCBROKER_QUEUE_DEPTH: '200' }
    await using first = await startTurnBroker({ db: postgres!, transport: 'stdio', env })
    await using second = await startTestBroker({
      db: postgres!,
      databaseUrl: first.config.databaseUrl!,
      env: {
        ...env,
        CCBROKER_CLAUDE_BIN: first.config.claudeBin!,
        CCBROKER_WORKER_TRANSPORT: 'stdio',
      },
    })
    const db = first.broker.database.db
    // A turn that holds the session, so the scheduled turns wait in its queue.
    const sessionId = newSessionId('sched-two')
    const holder = await first.enqueue({
      session_id: sessionId,
      workspace_id: WORKSPACE,
      user_message: 'hold',
      metadata: scenario('hang'),
    })
    await first.waitState(holder.turn_id, ['running'])

    const now = new Date()
    const oneShots = Array.from({ length: 10 }, (_, i) => `task_two_${i}`)
    await db.transaction(async (tx) => {
      for (const id of oneShots)
        await insertScheduledTask(tx, {
          id,
          sessionId,
          workspaceId: WORKSPACE,
          prompt: `due now ${id}`,
          runAt: now,
          nextRunAt: now,
        })
      await insertScheduledTask(tx, {
        id: 'task_two_cron',
        sessionId,
        workspaceId: WORKSPACE,
        prompt: 'every second',
        cron: '* * * * * *',
        nextRunAt: now,
      })
    })
    await until(
      async () => {
        const tasks = await listScheduledTasks(db, sessionId)
        return tasks.every((t) => (t.cron ? t.runs >= 3 : t.state === 'done'))
      },
      { what: 'the one-shot tasks to fire and the cron to fire three times' },
    )
    await cancelScheduledTask(db, sessionId, 'task_two_cron')

    const tasks = await listScheduledTasks(db, sessionId)
    const turns = await sessionTurns(first, sessionId)
    for (const task of tasks) {
      const runs = await listScheduleRuns(db, task.id)
      const ofTask = scheduledBy(turns, task.id)
      const expected = task.cron ? task.runs : 1
      const counts = { task: task.id, runs: runs.length, turns: ofTask.length, counted: task.runs }
      expect(counts).toEqual({ task: task.id, runs: expected, turns: expected, counted: expected })
      expect(runs.map((r) => r.turnId).sort()).toEqual(ofTask.map((t) => t.id).sort())
      expect(runs.map((r) => r.error)).toEqual(runs.map(() => null))
    }
    expect(turns.filter((t) => t.metadata.scheduled_task_id === undefined)).toEqual([
      expect.objectContaining({ id: holder.turn_id }),
    ])
    // The second broker served the same database (its API sees the first one's turns).
    const seen = await second.api('GET', `/api/turns/${holder.turn_id}`)
    expect(seen.body.turn.state).toBe('running')
  })
})
