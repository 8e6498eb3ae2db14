import { describe, expect, test } from 'bun:test'
import { startFakeAnthropic, type RecordedRequest } from '../../src/testing/fakes/anthropic.ts'
import { startTestBroker } from '../helpers/broker.ts'
import { claudeBin } from '../helpers/claude-bin.ts'
import { databases } from '../helpers/databases.ts'
import { until } from '../helpers/until.ts'

const textOf = (content: unknown): string =>
  typeof content === 'string'
    ? content
    : Array.isArray(content)
      ? content.map((b: any) => (b?.type === 'text' ? b.text : '')).join('')
      : ''

/** The conversation a model request carried: its user and assistant messages as text. */
const conversation = (r: RecordedRequest) =>
  (r.body.messages as { role: string; content: unknown }[])
    .filter((m) => m.role === 'user' || m.role === 'assistant')
    .map((m) => `${m.role}:${textOf(m.content)}`)

// Forking is a stdio feature (ccr refuses it): real Claude Code 2.1.332 over stdio.
const bin = claudeBin('stdio')
describe.skipIf(!bin)('forking a session with real Claude Code over stdio', () => {
  test('the fork’s first model request carries the source’s conversation; the source’s next turn does not carry the fork’s', async () => {
    await using model = startFakeAnthropic()
    model.script(
      { text: 'Noted: PINEAPPLE.' },
      { text: 'In the fork: it was PINEAPPLE.' },
      { text: 'Still here in the source.' },
    )
    await using b = await startTestBroker({
      db: databases()[0]!,
      env: {
        CCBROKER_CLAUDE_BIN: bin!,
        CCBROKER_WORKER_TRANSPORT: 'stdio',
        ANTHROPIC_BASE_URL: model.url,
        ANTHROPIC_API_KEY: 'sk-ant-test-key',
      },
    })
    const agentRequests = () =>
      model.messageRequests().filter((r) => Array.isArray(r.body?.tools) && r.body.tools.length > 0)
    const run = async (sessionId: string, text: string) => {
      const before = agentRequests().length
      const res = await b.api('POST', '/api/v2/turns', {
        session_id: sessionId,
        workspace_id: 'ws-e2e-fork',
        user_message: text,
      })
      expect(res.status).toBe(202)
      const turn = await until(
        async () => {
          const t = (await b.api('GET', `/api/turns/${res.body.turn_id}`)).body.turn
          return ['done', 'failed', 'cancelled'].includes(t.state) ? t : null
        },
        { what: `turn ${res.body.turn_id} to end`, intervalMs: 50 },
      )
      expect([turn.state, turn.error]).toEqual(['done', null])
      const requests = agentRequests().slice(before)
      expect(requests.length).toBe(1)
      return requests[0]!
    }

    const source = 'e2e-fork-source'
    await run(source, 'Remember the word PINEAPPLE.')
    const src = (await b.api('GET', `/v1/sessions/${source}`)).body.session
    const forked = await b.api('POST', `/v1/sessions/${source}/fork`, { title: 'fork' })
    expect(forked.status).toBe(201)
    const fork = forked.body.session
    expect(fork.forked_from).toBe(source)

    const forkRequest = await run(fork.id, 'FORK: what was the word?')
    expect(forkRequest.headers['x-claude-code-session-id']).toBe(fork.claude_session_id)
    const forkConvo = conversation(forkRequest)
    expect(
      forkConvo.some((m) => m.startsWith('user:') && m.includes('Remember the word PINEAPPLE.')),
    ).toBe(true)
    expect(forkConvo).toContain('assistant:Noted: PINEAPPLE.')
    expect(forkConvo.at(-1)).toContain('FORK: what was the word?')

    const sourceRequest = await run(source, 'SOURCE: still there?')
    expect(sourceRequest.headers['x-claude-code-session-id']).toBe(src.claude_session_id)
    const sourceConvo = conversation(sourceRequest)
    expect(sourceConvo).toContain('assistant:Noted: PINEAPPLE.')
    expect(sourceConvo.at(-1)).toContain('SOURCE: still there?')
    expect(sourceConvo.join('\n')).not.toContain('FORK: what was the word?')
    expect(sourceConvo.join('\n')).not.toContain('In the fork')

    // The fork's spend is its own: Claude Code's cumulative total carries the source's, the
    // fork's usage does not.
    const forkUsage = (await b.api('GET', `/v1/sessions/${fork.id}`)).body.session.usage
    const srcUsage = (await b.api('GET', `/v1/sessions/${source}`)).body.session.usage
    expect([forkUsage.results, srcUsage.results]).toEqual([1, 2])
    expect(forkUsage.cost_usd).toBeGreaterThan(0)
    expect(forkUsage.cost_usd).toBeLessThan(srcUsage.cost_usd)
  })
})
