import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startFakeImBridge } from '../../src/testing/fakes/im-bridge.ts'
import { databases } from '../helpers/databases.ts'
import { startInternalServer, startPublicServer } from '../helpers/outbound.ts'
import {
  newSessionId,
  scenario,
  startTurnBroker,
  workerOf,
  type TurnBroker,
} from '../helpers/turns.ts'
import { connectWorkerMcp, mcpUrl, textOf } from '../helpers/worker-mcp.ts'

const SECRET = 'im-bridge-secret-0123456789'

/**
 * send_file / send_image sources go through the outbound guard: a worker cannot make the broker
 * fetch loopback or private addresses (and forward the bytes to the IM bridge), and cannot tell
 * a closed port from a refused address.
 */
describe.each(databases())('fetches made for workers, on $name', (db) => {
  let b: TurnBroker
  let bridge: Awaited<ReturnType<typeof startFakeImBridge>>
  let internal: ReturnType<typeof startInternalServer>
  let publicServer: ReturnType<typeof startPublicServer>
  let mcp: Awaited<ReturnType<typeof connectWorkerMcp>>
  let turnId: string
  beforeAll(async () => {
    bridge = await startFakeImBridge({ secret: SECRET })
    internal = startInternalServer()
    publicServer = startPublicServer()
    b = await startTurnBroker({
      db,
      transport: 'stdio',
      env: {
        CCBROKER_IMBRIDGE_URL: bridge.url,
        CCBROKER_IMBRIDGE_SECRET: SECRET,
        // The "public" file server stands on 127.0.0.2, allowed explicitly; 127.0.0.1 is not.
        CCBROKER_FETCH_ALLOW: '127.0.0.2/32',
      },
    })
    const sessionId = newSessionId('fetch')
    const res = await b.enqueue({
      session_id: sessionId,
      workspace_id: 'ws-fetch',
      user_message: 'send things',
      im_channel_id: 'chan-1',
      im_user_id: 'user-1',
      metadata: scenario('hang'),
    })
    turnId = res.turn_id
    const token = (await workerOf(b, sessionId)).env.CLAUDE_CODE_SESSION_ACCESS_TOKEN!
    mcp = await connectWorkerMcp(mcpUrl(b, sessionId), token)
  })
  afterAll(async () => {
    await mcp.close()
    await b.api('POST', `/api/turns/${turnId}/cancel`)
    await b.stop()
    await bridge.stop()
    await internal[Symbol.asyncDispose]()
    await publicServer[Symbol.asyncDispose]()
  })

  const refusal = (url: string) => {
    const u = new URL(url)
    return `could not fetch ${u.origin}${u.pathname}${u.search ? '?…' : ''}: the address is not allowed or not reachable`
  }

  test('every spelling of a loopback or private address is refused with one message; the internal server sees nothing, the IM bridge gets nothing', async () => {
    const port = internal.port
    const urls = [
      `http://127.0.0.1:${port}/secret`,
      `http://localhost:${port}/secret`,
      `http://2130706433:${port}/secret`,
      `http://0x7f000001:${port}/secret`,
      `http://0177.0.0.1:${port}/secret`,
      `http://127.1:${port}/secret`,
      `http://[::ffff:127.0.0.1]:${port}/secret`,
      `http://[::1]:${port}/secret`,
      `http://0.0.0.0:${port}/secret`,
      `http://169.254.169.254/latest/meta-data/`,
      `http://10.0.0.1:${port}/secret`,
      `http://192.168.1.1/secret?sig=abc`,
    ]
    for (const url of urls) {
      const result = await mcp.call('send_file', { source: url, filename: 'x.txt' })
      expect({ url, isError: result.isError, text: textOf(result) }).toEqual({
        url,
        isError: true,
        text: refusal(url),
      })
    }
    expect(internal.requests).toEqual([])
    expect(bridge.requests).toEqual([])
  })

  test('a redirect chain from an allowed server to a loopback one is refused at the hop, and the internal server sees nothing', async () => {
    const target = `${internal.url}/secret`
    for (const path of [
      `/to?url=${encodeURIComponent(target)}`,
      `/chain/3?url=${encodeURIComponent(target)}`,
    ]) {
      const url = `${publicServer.url}${path}`
      const result = await mcp.call('send_file', { source: url, filename: 'x.txt' })
      expect(result.isError).toBe(true)
      expect(textOf(result)).toBe(refusal(url))
    }
    expect(internal.requests).toEqual([])
    expect(bridge.requests).toEqual([])
  })

  test('a closed port on an allowed address answers exactly like a refused address (no port scanning)', async () => {
    const closed = 'http://127.0.0.2:9/nothing'
    const result = await mcp.call('send_file', { source: closed, filename: 'x.txt' })
    expect(textOf(result)).toBe(refusal(closed))
  })

  test('an allowed file server is fetched and its bytes reach the IM bridge', async () => {
    const result = await mcp.call('send_file', {
      source: `${publicServer.url}/file`,
      filename: 'notes.txt',
    })
    expect(result.isError).toBeFalsy()
    expect(bridge.requests.map((r) => r.path)).toEqual(['/api/internal/imbridge/send-file'])
  })
})
