import { describe, expect, test } from 'bun:test'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { databases } from '../helpers/databases.ts'
import { captureLog, newSessionId, startTurnBroker, workerOf } from '../helpers/turns.ts'
import { until } from '../helpers/until.ts'

const KEY = 'key-0123456789abcdef'

describe.each(databases())('what users trip over, on $name', (db) => {
  test('401s carry WWW-Authenticate: Bearer, for API keys and worker tokens alike', async () => {
    await using b = await startTurnBroker({
      db,
      transport: 'stdio',
      env: { CCBROKER_API_KEYS: KEY },
    })
    const noKey = await b.api('GET', '/v1/sessions')
    expect(noKey.status).toBe(401)
    expect(noKey.headers.get('www-authenticate')).toBe('Bearer')
    const noToken = await b.api('GET', '/v1/sessions/s/worker')
    expect(noToken.status).toBe(401)
    expect(noToken.headers.get('www-authenticate')).toBe('Bearer')
    const mcp = await fetch(`${b.url}/v1/sessions/s/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    })
    expect(mcp.status).toBe(401)
    expect(mcp.headers.get('www-authenticate')).toBe('Bearer')
  })

  test('sessions are listed newest first by creation time, whatever their ids, with a stable cursor', async () => {
    await using b = await startTurnBroker({ db, transport: 'stdio' })
    const workspace = `ws-order-${crypto.randomUUID().slice(0, 6)}`
    // Ids chosen to sort the other way round from their creation.
    const ids = ['zz-first', 'mm-second', 'aa-third'].map(
      (p) => `${p}-${crypto.randomUUID().slice(0, 6)}`,
    )
    for (const id of ids) {
      const res = await b.api('POST', '/api/v2/turns', {
        session_id: id,
        workspace_id: workspace,
        user_message: 'order',
      })
      await b.waitState(res.body.turn_id, ['done'])
    }
    const all = await b.api('GET', `/v1/sessions?workspace_id=${workspace}`)
    expect(all.body.data.map((s: any) => s.id)).toEqual([...ids].reverse())
    const pages: string[] = []
    let cursor: string | null = null
    do {
      const page: any = await b.api(
        'GET',
        `/v1/sessions?workspace_id=${workspace}&limit=1${cursor ? `&cursor=${cursor}` : ''}`,
      )
      pages.push(...page.body.data.map((s: any) => s.id))
      cursor = page.body.next_cursor
    } while (cursor)
    expect(pages).toEqual([...ids].reverse())
  })

  test('no key, token or secret reaches a log line: a whole turn’s log, even a worker printing its credentials', async () => {
    const { records, log } = captureLog()
    const anthropicKey = `sk-ant-test-${crypto.randomUUID()}`
    const oauth = `oauth-${crypto.randomUUID()}`
    await using b = await startTurnBroker({
      db,
      transport: 'stdio',
      log,
      env: {
        CCBROKER_API_KEYS: KEY,
        ANTHROPIC_API_KEY: anthropicKey,
        CLAUDE_CODE_OAUTH_TOKEN: oauth,
      },
      workerEnv: { FAKE_CLAUDE_LEAK_SECRETS: '1' },
    })
    const sessionId = newSessionId('secret')
    const res = await b.api(
      'POST',
      '/api/v2/turns',
      { session_id: sessionId, workspace_id: 'ws-secret', user_message: 'hi' },
      { authorization: `Bearer ${KEY}` },
    )
    expect(res.status).toBe(202)
    await until(
      async () =>
        (
          await b.api('GET', `/api/turns/${res.body.turn_id}`, undefined, {
            authorization: `Bearer ${KEY}`,
          })
        ).body.turn?.state === 'done',
      { what: 'the turn to be done' },
    )
    const text = records.map((r) => JSON.stringify(r)).join('\n')
    // The worker did print them (its stderr is in the log, tagged with the turn)...
    expect(text).toContain('token=[redacted] key=[redacted] oauth=[redacted]')
    const worker = await workerOf(b, sessionId)
    const jwtSecret =
      b.config.jwtSecret ?? (await readFile(join(b.dataDir, 'jwt-secret'), 'utf8')).trim()
    // ...and none of the values is anywhere in it.
    for (const secret of [
      KEY,
      anthropicKey,
      oauth,
      jwtSecret,
      worker.env.CLAUDE_CODE_SESSION_ACCESS_TOKEN!,
    ])
      expect(text.includes(secret)).toBe(false)
  })
})
