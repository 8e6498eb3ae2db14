import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { decodeJwt } from 'jose'
import { databases } from '../helpers/databases.ts'
import { storedCounts } from '../helpers/stored.ts'
import {
  newSessionId,
  readAll,
  scenario,
  startTurnBroker,
  TRANSPORTS,
  workerOf,
  type TurnBroker,
} from '../helpers/turns.ts'
import { bridgeWorker, createWorkerClient } from '../helpers/worker-client.ts'
import { mcpUrl, refusedConnect } from '../helpers/worker-mcp.ts'

const cases = databases().flatMap((db) => TRANSPORTS.map((transport) => ({ db, transport })))
const TURN_MAX_MS = 120_000

describe.each(cases)('worker tokens on $db.name, $transport', ({ db, transport }) => {
  let b: TurnBroker
  beforeAll(async () => {
    b = await startTurnBroker({
      db,
      transport,
      // A process per turn: its token ends with its turn (a warm worker's with its process).
      env: {
        CCBROKER_TURN_MAX_MS: String(TURN_MAX_MS),
        CCBROKER_WORKER_TOKEN_TTL_SECONDS: '7200',
        CCBROKER_WORKER_IDLE_MS: '0',
      },
    })
  })
  afterAll(() => b.stop())

  test('a worker’s token lives for its turn’s maximum duration plus 5 minutes, not 24 h', async () => {
    const sessionId = newSessionId('ttl')
    const res = await b.enqueue({
      session_id: sessionId,
      workspace_id: 'ws-tok',
      user_message: 'hi',
    })
    await b.waitState(res.turn_id, ['done'])
    const token = (await workerOf(b, sessionId)).env.CLAUDE_CODE_SESSION_ACCESS_TOKEN!
    const { iat, exp } = decodeJwt(token)
    expect(exp! - iat!).toBe(TURN_MAX_MS / 1000 + 300)
  })

  test('once its turn has ended, the worker’s token gets 401 on every worker route and on the MCP route, and nothing is stored', async () => {
    const sessionId = newSessionId('ended')
    const held = b.control.hold(sessionId)
    const { turn_id: turnId } = await b.enqueue({
      session_id: sessionId,
      workspace_id: 'ws-tok',
      user_message: 'then stop',
      metadata: scenario('control'),
    })
    await held.arrived
    const worker = await workerOf(b, sessionId)
    const token = worker.env.CLAUDE_CODE_SESSION_ACCESS_TOKEN!
    const epoch = decodeJwt(token).epoch as number
    const client = createWorkerClient({
      baseUrl: `${b.url}/v1/sessions/${sessionId}`,
      token,
      epoch,
    })
    // While the turn runs, the token works; a stream opened now is ended with the generation.
    expect((await client.heartbeat()).status).toBe(200)
    await using stream = await client.stream()
    expect(stream.status).toBe(200)
    held.release()
    await b.waitState(turnId, ['done'])
    // It replayed what its generation had (a user message; over CCR the end_session too),
    // then ended: a stream left open would time the test out.
    const replayed = (await readAll(stream)).map((f) => f.data.payload.type)
    expect(replayed).toEqual(transport === 'ccr' ? ['user', 'control_request'] : ['user'])

    const before = await storedCounts(b.broker.database.db)
    const ended = {
      status: 401,
      body: { error: `worker generation ${epoch} has ended; its token is no longer valid` },
      contentType: 'application/json',
    }
    const late = { type: 'assistant', message: { role: 'assistant', content: 'too late' } }
    expect(await client.postEvents([{ payload: late }])).toEqual(ended)
    expect(await client.putWorker({ worker_status: 'idle' })).toEqual(ended)
    expect(await client.heartbeat()).toEqual(ended)
    expect(await client.delivery([{ event_id: 'x', status: 'received' }])).toEqual(ended)
    expect(await client.postInternal([{ payload: { type: 'user' } }])).toEqual(ended)
    expect(await client.getWorker()).toEqual(ended)
    const again = await client.stream()
    expect(again.status).toBe(401)
    again.close()
    expect(
      await refusedConnect(mcpUrl(b, sessionId), { authorization: `Bearer ${token}` }),
    ).toEqual({
      status: 401,
      body: {
        jsonrpc: '2.0',
        error: { code: -32001, message: ended.body.error },
        id: null,
      },
    })
    expect(await storedCounts(b.broker.database.db)).toEqual(before)
  })

  test('a new bridge ends the older generation’s open stream; its token is then 409 (stale)', async () => {
    const sessionId = newSessionId('bridged')
    const res = await b.enqueue({
      session_id: sessionId,
      workspace_id: 'ws-tok',
      user_message: 'x',
    })
    await b.waitState(res.turn_id, ['done'])
    const first = await bridgeWorker(b, sessionId)
    await using stream = await first.stream()
    expect(stream.status).toBe(200)
    const second = await bridgeWorker(b, sessionId)
    // The old stream ends: it would otherwise receive the new worker's client events. (It
    // replayed the message no worker consumed; over CCR the turn's worker had consumed it.)
    const replayed = (await readAll(stream)).map((f) => f.data.payload.type)
    expect(replayed).toEqual(transport === 'ccr' ? [] : ['user'])
    expect((await first.heartbeat()).status).toBe(409)
    expect((await second.heartbeat()).status).toBe(200)
    // An external bridge's token keeps the configured lifetime.
    const bridge = await b.api('POST', `/v1/sessions/${sessionId}/bridge`)
    expect(bridge.body.expires_in).toBe(7200)
    const { iat, exp } = decodeJwt(bridge.body.worker_jwt)
    expect(exp! - iat!).toBe(7200)
  })
})
