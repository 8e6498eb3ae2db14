import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { databases } from '../helpers/databases.ts'
import {
  newSessionId,
  postTurn,
  readAll,
  startTurnBroker,
  TRANSPORTS,
  type TurnBroker,
} from '../helpers/turns.ts'

const ANTHROPIC = {
  ANTHROPIC_API_KEY: 'sk-ant-test-key',
  ANTHROPIC_BASE_URL: 'http://127.0.0.1:9/anthropic',
  ANTHROPIC_MODEL: 'claude-test-model',
}

describe.each(TRANSPORTS)('a session’s turns on %s', (transport) => {
  let b: TurnBroker
  beforeAll(async () => {
    // A process per turn: continuity through --resume (warm workers: warm-workers.test.ts).
    b = await startTurnBroker({
      db: databases()[0]!,
      transport,
      env: { ...ANTHROPIC, CCBROKER_WORKER_IDLE_MS: '0' },
    })
  })
  afterAll(() => b.stop())

  const run = async (sessionId: string, text: string) => {
    const frames = await readAll(
      await postTurn(b.url, { session_id: sessionId, workspace_id: 'ws-conv', user_message: text }),
    )
    expect(frames.at(-1)!.data.payload.state).toBe('done')
    return frames
  }
  const reply = (frames: { data: any }[]) =>
    frames.find((f) => f.data.event_type === 'assistant')!.data.payload.message.content[0].text

  test('the second turn continues the conversation in the same working directory: --session-id, then --resume', async () => {
    const sessionId = newSessionId()
    const first = await run(sessionId, 'remember the number 7')
    const second = await run(sessionId, 'which number?')
    expect(reply(first)).toBe('echo: remember the number 7')
    expect(reply(second)).toBe('echo: which number? (history: 1)')

    const session = (await b.api('GET', `/v1/sessions/${sessionId}`)).body.session
    const claudeId = session.claude_session_id as string
    const workers = await b.workers(sessionId)
    expect(workers).toHaveLength(2)
    const [w1, w2] = workers as [(typeof workers)[0], (typeof workers)[0]]
    const runDir = join(b.dataDir, 'run', sessionId)
    const io = ['--input-format', 'stream-json', '--output-format', 'stream-json', '--verbose']
    const head =
      transport === 'stdio' ? ['-p'] : ['--print', '--sdk-url', `${b.url}/v1/sessions/${sessionId}`]
    const base = [...head, ...io, '--session-id', claudeId]
    expect(w1.argv.slice(0, base.length)).toEqual(base)
    // After the session's own arguments come the worker setup's (MCP config, tool rules),
    // the same on both turns.
    expect(w2.argv).toEqual([...head, ...io, '--resume', claudeId, ...w1.argv.slice(base.length)])
    expect(w1.cwd).toBe(join(runDir, 'project'))
    expect(w2.cwd).toBe(w1.cwd)
    expect(w1.transport).toBe(transport)

    const configDir = join(runDir, 'config')
    const envOf = (epoch: number) => ({
      HOME: join(runDir, 'home'),
      CLAUDE_CONFIG_DIR: configDir,
      ...ANTHROPIC,
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      DISABLE_AUTOUPDATER: '1',
      CLAUDE_CODE_SESSION_ACCESS_TOKEN: expect.stringMatching(/^ey[\w-]+\.[\w-]+\.[\w-]+$/),
      ...(transport === 'ccr'
        ? {
            CLAUDE_CODE_USE_CCR_V2: '1',
            CLAUDE_CODE_WORKER_EPOCH: String(epoch),
            CLAUDE_CODE_POST_FOR_SESSION_INGRESS_V2: '1',
          }
        : {}),
    })
    // What the broker itself sets (ENABLE_* come from the worker setup's hook).
    const own = (env: Record<string, string>) =>
      Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('ENABLE_')))
    expect(own(w1.env)).toEqual(envOf(1))
    expect(own(w2.env)).toEqual(envOf(2))
    expect(w2.env.CLAUDE_CODE_SESSION_ACCESS_TOKEN).not.toBe(
      w1.env.CLAUDE_CODE_SESSION_ACCESS_TOKEN,
    )

    // HOME is fresh per turn: the turn's directories are gone once it is done (the workspace
    // store keeps what must survive).
    expect(existsSync(w1.env.HOME!)).toBe(false)
    expect(existsSync(runDir)).toBe(false)
  })

  test('sessions do not share a conversation: a new session starts with no history', async () => {
    const a = newSessionId()
    const other = newSessionId()
    await run(a, 'in a')
    const frames = await run(other, 'in b')
    expect(reply(frames)).toBe('echo: in b')
    const [w] = await b.workers(other)
    expect(w!.argv).toContain('--session-id')
    expect(w!.cwd).not.toBe((await b.workers(a))[0]!.cwd)
  })
})
