import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Webhook } from 'standardwebhooks'
import { insertScheduledTask } from '../../src/db/repos/schedules.ts'
import { startWebhookReceiver, type WebhookReceiver } from '../fakes/webhook-receiver.ts'
import { startTestBroker } from '../helpers/broker.ts'
import { databases } from '../helpers/databases.ts'
import { newSessionId, scenario, startTurnBroker, type TurnBroker } from '../helpers/turns.ts'
import { until } from '../helpers/until.ts'

const ISO = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
const ALL = [
  'turn.done',
  'turn.failed',
  'turn.cancelled',
  'permission.requested',
  'budget.exhausted',
  'schedule.fired',
]

/** Webhooks to loopback are allowed here; retries come quickly and stop after a second. */
const WEBHOOK_ENV = {
  CCBROKER_WEBHOOK_ALLOW: '127.0.0.1',
  CCBROKER_WEBHOOK_POLL_MS: '50',
  CCBROKER_WEBHOOK_RETRY_BASE_MS: '100',
  CCBROKER_WEBHOOK_MAX_AGE_MS: '1000',
}

/** A received delivery, verified with the subscription's secret by `standardwebhooks`. */
const verified = (secret: string, r: { headers: Record<string, string>; body: string }) =>
  new Webhook(secret).verify(r.body, r.headers) as Record<string, any>

describe.each(databases())('webhooks on $name', (db) => {
  let b: TurnBroker
  let receiver: WebhookReceiver
  beforeAll(async () => {
    receiver = startWebhookReceiver()
    b = await startTurnBroker({
      db,
      transport: 'stdio',
      env: { ...WEBHOOK_ENV, CCBROKER_PERMISSION_POLICY: 'ask' },
    })
  })
  afterAll(async () => {
    await b.stop()
    await receiver.stop()
  })

  const subscribe = async (body: Record<string, unknown>) => {
    const res = await b.api('POST', '/v1/webhooks', body)
    expect(res.status).toBe(201)
    return res.body as { webhook: Record<string, any>; secret: string }
  }

  test('POST shows the secret once; GET lists without it; DELETE removes; bad input → 400', async () => {
    const created = await subscribe({ url: receiver.url, event_types: ['turn.done'] })
    expect(created).toEqual({
      webhook: {
        id: expect.stringMatching(/^wh_[0-9a-f]{32}$/),
        url: receiver.url,
        event_types: ['turn.done'],
        workspace_id: null,
        created_at: ISO,
      },
      secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]{32}$/),
    })
    const id = created.webhook.id
    expect((await b.api('GET', `/v1/webhooks/${id}`)).body).toEqual({ webhook: created.webhook })
    const listed = (await b.api('GET', '/v1/webhooks')).body.data
    expect(listed).toContainEqual(created.webhook)
    expect(JSON.stringify(listed)).not.toContain(created.secret)
    expect((await b.api('DELETE', `/v1/webhooks/${id}`)).status).toBe(204)
    expect((await b.api('GET', `/v1/webhooks/${id}`)).status).toBe(404)
    expect((await b.api('DELETE', `/v1/webhooks/${id}`)).status).toBe(404)

    for (const body of [
      { url: 'ftp://example.com/x', event_types: ['turn.done'] },
      { url: receiver.url, event_types: ['turn.exploded'] },
      { url: receiver.url, event_types: [] },
      { url: receiver.url, event_types: ['turn.done'], workspace_id: '../x' },
    ])
      expect((await b.api('POST', '/v1/webhooks', body)).status).toBe(400)
  })

  test('a finished turn is delivered signed (verified with standardwebhooks) to the subscriptions that want it, and logged', async () => {
    const ws = `ws-h-${crypto.randomUUID().slice(0, 6)}`
    const all = await subscribe({ url: receiver.url, event_types: ALL, workspace_id: ws })
    const failedOnly = await subscribe({ url: receiver.url, event_types: ['turn.failed'] })
    const elsewhere = await subscribe({
      url: receiver.url,
      event_types: ['turn.done'],
      workspace_id: 'ws-other',
    })
    const sessionId = newSessionId()
    const { turn_id } = await b.enqueue({
      session_id: sessionId,
      workspace_id: ws,
      user_message: 'hi',
    })
    await b.waitState(turn_id, ['done'])
    const delivery = await until(
      async () => {
        const d = (await b.api('GET', `/v1/webhooks/${all.webhook.id}/deliveries`)).body.data
        return d[0]?.status === 'delivered' ? d[0] : null
      },
      { what: 'the turn.done delivery' },
    )
    const got = receiver.received.filter((r) => r.headers['webhook-id'] === delivery.id)
    expect(got.length).toBe(1)
    const r = got[0]!
    expect(r.headers['content-type']).toBe('application/json')
    expect(r.headers['webhook-signature']).toStartWith('v1,')
    const body = {
      type: 'turn.done',
      timestamp: ISO,
      data: {
        workspace_id: ws,
        session_id: sessionId,
        turn_id,
        state: 'done',
        error: null,
        cost_usd: 0.0123,
        num_turns: 1,
        duration_ms: expect.any(Number),
        result_preview: 'echo: hi',
      },
    }
    expect(verified(all.secret, r)).toEqual(body)
    // Another subscription's secret does not verify it.
    expect(() => verified(failedOnly.secret, r)).toThrow()
    expect(delivery).toEqual({
      id: expect.stringMatching(/^msg_[0-9a-f]{32}$/),
      event_type: 'turn.done',
      status: 'delivered',
      attempts: 1,
      last_status: 200,
      last_error: null,
      next_attempt_at: null,
      created_at: ISO,
      delivered_at: ISO,
      payload: body,
    })
    // Not subscribed to this type or this workspace: nothing queued for them.
    for (const other of [failedOnly, elsewhere])
      expect((await b.api('GET', `/v1/webhooks/${other.webhook.id}/deliveries`)).body.data).toEqual(
        [],
      )
    for (const w of [all, failedOnly, elsewhere])
      await b.api('DELETE', `/v1/webhooks/${w.webhook.id}`)
  })

  test('a receiver answering 500 gets the same delivery again (same id, valid signature) until it takes it; one that never does is given up', async () => {
    const ws = `ws-r-${crypto.randomUUID().slice(0, 6)}`
    const hook = await subscribe({
      url: receiver.url,
      event_types: ['turn.done'],
      workspace_id: ws,
    })
    receiver.fail(2)
    const { turn_id } = await b.enqueue({
      session_id: newSessionId(),
      workspace_id: ws,
      user_message: 'x',
    })
    await b.waitState(turn_id, ['done'])
    const delivered = await until(
      async () => {
        const d = (await b.api('GET', `/v1/webhooks/${hook.webhook.id}/deliveries`)).body.data
        return d[0]?.status === 'delivered' ? d[0] : null
      },
      { what: 'the delivery after two 500s' },
    )
    expect([delivered.attempts, delivered.last_status, delivered.last_error]).toEqual([
      3,
      200,
      null,
    ])
    const tries = receiver.received.filter((r) => r.headers['webhook-id'] === delivered.id)
    expect(tries.map((t) => t.status)).toEqual([500, 500, 200])
    for (const t of tries) expect(verified(hook.secret, t).data.turn_id).toBe(turn_id)

    // Always 500: retried with backoff (100, 400, 1600 ms) until past its maximum age (1 s).
    receiver.fail(1_000)
    const second = await b.enqueue({
      session_id: newSessionId(),
      workspace_id: ws,
      user_message: 'y',
    })
    await b.waitState(second.turn_id, ['done'])
    const failed = await until(
      async () => {
        const d = (await b.api('GET', `/v1/webhooks/${hook.webhook.id}/deliveries`)).body.data
        return d[0]?.status === 'failed' ? d[0] : null
      },
      { what: 'the delivery to be given up' },
    )
    receiver.fail(0)
    expect(failed).toMatchObject({
      attempts: 3,
      last_status: 500,
      last_error: 'the receiver answered 500',
      next_attempt_at: null,
      delivered_at: null,
    })
    await b.api('DELETE', `/v1/webhooks/${hook.webhook.id}`)
  })

  test('permission.requested and budget.exhausted are delivered too', async () => {
    const ws = `ws-p-${crypto.randomUUID().slice(0, 6)}`
    const hook = await subscribe({
      url: receiver.url,
      event_types: ['permission.requested', 'budget.exhausted'],
      workspace_id: ws,
    })
    const sessionId = (await b.api('POST', '/v1/sessions', { workspace_id: ws, budget_usd: 0.001 }))
      .body.session.id
    const { turn_id } = await b.enqueue({
      session_id: sessionId,
      workspace_id: ws,
      user_message: 'list /srv',
      metadata: scenario('tool'),
    })
    const request = await b.waitEvent(sessionId, turn_id, 'permission_request')
    const requestId = request.payload.request_id
    await b.api('POST', `/v1/sessions/${sessionId}/permissions/${requestId}`, { behavior: 'allow' })
    await b.waitState(turn_id, ['done', 'failed'])
    const bodies = await until(
      async () => {
        const d = (await b.api('GET', `/v1/webhooks/${hook.webhook.id}/deliveries`)).body.data
        return d.length === 2 && d.every((x: any) => x.status === 'delivered') ? d : null
      },
      { what: 'both deliveries' },
    )
    const byType = Object.fromEntries(
      bodies.map((d: any) => {
        const r = receiver.received.find((x) => x.headers['webhook-id'] === d.id)!
        return [d.event_type, verified(hook.secret, r).data]
      }),
    )
    expect(byType).toEqual({
      'permission.requested': {
        workspace_id: ws,
        session_id: sessionId,
        turn_id,
        request_id: requestId,
        tool_name: request.payload.tool_name,
        answer_url: `/v1/sessions/${sessionId}/permissions/${encodeURIComponent(requestId)}`,
      },
      'budget.exhausted': {
        workspace_id: ws,
        session_id: sessionId,
        turn_id,
        scope: 'session',
        budget_usd: 0.001,
        spent_usd: 0.0123,
      },
    })
    await b.api('DELETE', `/v1/webhooks/${hook.webhook.id}`)
  })
})

test('a scheduled task that fires is delivered as schedule.fired', async () => {
  await using receiver = startWebhookReceiver()
  await using b = await startTurnBroker({
    db: databases()[0]!,
    transport: 'stdio',
    env: { ...WEBHOOK_ENV, CCBROKER_SCHEDULER_POLL_MS: '50' },
  })
  const hook = (
    await b.api('POST', '/v1/webhooks', { url: receiver.url, event_types: ['schedule.fired'] })
  ).body
  const sessionId = newSessionId()
  const first = await b.enqueue({ session_id: sessionId, workspace_id: 'ws-s', user_message: 'x' })
  await b.waitState(first.turn_id, ['done'])
  const now = new Date()
  await insertScheduledTask(b.broker.database.db, {
    id: 'task_webhook',
    sessionId,
    workspaceId: 'ws-s',
    prompt: 'scheduled',
    runAt: now,
    nextRunAt: now,
  })
  const r = await until(() => receiver.received[0], { what: 'the schedule.fired delivery' })
  const turns = (await b.api('GET', `/v1/sessions/${sessionId}/turns`)).body.data
  const fired = turns.find((t: any) => t.metadata.scheduled_task_id === 'task_webhook')
  expect(verified(hook.secret, r)).toEqual({
    type: 'schedule.fired',
    timestamp: ISO,
    data: {
      workspace_id: 'ws-s',
      session_id: sessionId,
      turn_id: fired.id,
      task_id: 'task_webhook',
      scheduled_for: now.toISOString(),
    },
  })
})

test('without CCBROKER_WEBHOOK_ALLOW a loopback or private URL is refused with 400', async () => {
  await using b = await startTestBroker({ db: databases()[0]! })
  for (const url of [
    'http://127.0.0.1:9/x',
    'http://10.1.2.3/x',
    'http://[::1]/x',
    'http://localhost/x',
  ]) {
    const res = await b.api('POST', '/v1/webhooks', { url, event_types: ['turn.done'] })
    expect([res.status, res.body.error]).toEqual([
      400,
      expect.stringContaining('is a loopback or private address'),
    ])
  }
  expect((await b.api('GET', '/v1/webhooks')).body.data).toEqual([])
})

const pg = databases().find((d) => d.name === 'postgres')
describe.skipIf(!pg)('webhooks with two replicas on one Postgres', () => {
  test('each event is delivered once although both replicas send the outbox', async () => {
    await using receiver = startWebhookReceiver()
    await using one = await startTurnBroker({ db: pg!, transport: 'stdio', env: WEBHOOK_ENV })
    await using two = await startTurnBroker({
      db: pg!,
      transport: 'stdio',
      env: WEBHOOK_ENV,
      databaseUrl: one.config.databaseUrl!,
    })
    const hook = (
      await one.api('POST', '/v1/webhooks', { url: receiver.url, event_types: ['turn.done'] })
    ).body
    const turns = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        (i % 2 ? one : two).enqueue({
          session_id: newSessionId(),
          workspace_id: 'ws-two',
          user_message: `turn ${i}`,
        }),
      ),
    )
    for (const t of turns) await one.waitState(t.turn_id, ['done'])
    await until(
      async () => {
        const d = (await two.api('GET', `/v1/webhooks/${hook.webhook.id}/deliveries`)).body.data
        return d.length === 6 && d.every((x: any) => x.status === 'delivered')
      },
      { what: 'six deliveries' },
    )
    const ids = receiver.received.map((r) => r.headers['webhook-id'])
    expect(ids.length).toBe(6)
    expect(new Set(ids).size).toBe(6)
    const turnIds = receiver.received.map((r) => verified(hook.secret, r).data.turn_id).sort()
    expect(turnIds).toEqual(turns.map((t) => t.turn_id).sort())
  })
})
