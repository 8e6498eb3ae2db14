import { describe, expect, test } from 'bun:test'
import { startFakeAnthropic } from '../../src/testing/fakes/anthropic.ts'
import { startTestBroker } from '../helpers/broker.ts'
import { claudeBin } from '../helpers/claude-bin.ts'
import { databases } from '../helpers/databases.ts'
import { openSse } from '../helpers/sse.ts'

const textOf = (content: unknown): string =>
  typeof content === 'string'
    ? content
    : Array.isArray(content)
      ? content.map((b: any) => (b?.type === 'text' ? b.text : '')).join('')
      : ''

for (const transport of ['ccr', 'stdio'] as const) {
  const bin = claudeBin(transport)
  if (!bin)
    console.log(
      `skip: real Claude Code for ${transport} is not installed; run \`npm run fetch-claude\``,
    )
  describe.skipIf(!bin)(`real Claude Code over ${transport}`, () => {
    test('two turns in one session: the second model request carries the first turn', async () => {
      await using model = startFakeAnthropic()
      model.script({ text: 'First answer from the model.' }, { text: 'Second answer.' })
      await using b = await startTestBroker({
        db: databases()[0]!,
        env: {
          CCBROKER_CLAUDE_BIN: bin!,
          CCBROKER_WORKER_TRANSPORT: transport,
          ANTHROPIC_BASE_URL: model.url,
          ANTHROPIC_API_KEY: 'sk-ant-test-key',
        },
      })
      const run = async (text: string) => {
        const res = await fetch(`${b.url}/api/v2/turns`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            session_id: `e2e-${transport}`,
            workspace_id: 'ws-e2e',
            user_message: text,
          }),
        })
        expect(res.status).toBe(202)
        const { turn_id, events_url } = (await res.json()) as {
          turn_id: string
          events_url: string
        }
        await using stream = await openSse(b.url + events_url)
        const frames = []
        for (let f = await stream.next(); f; f = await stream.next()) frames.push(f.data)
        const done = frames.at(-1)
        expect(done.event_type).toBe('done')
        expect(done.payload.state).toBe('done')
        const turn = (await b.api('GET', `/api/turns/${turn_id}`)).body.turn
        return { frames, turn }
      }

      const first = await run('Remember the word PINEAPPLE.')
      const types = first.frames.map((f: any) => `${f.source}:${f.event_type}`)
      expect(types).toContain('worker:system')
      expect(types).toContain('worker:assistant')
      expect(types).toContain('worker:result')
      expect(first.turn).toMatchObject({ state: 'done', error: null })
      const assistant = first.frames.find((f: any) => f.event_type === 'assistant')
      expect(textOf(assistant.payload.message.content)).toBe('First answer from the model.')

      const second = await run('What was the word?')
      expect(second.turn.state).toBe('done')
      const requests = model
        .messageRequests()
        .filter((r) => Array.isArray(r.body?.tools) && r.body.tools.length > 0)
      const last = requests.at(-1)!.body.messages as { role: string; content: unknown }[]
      const convo = last
        .filter((m) => m.role === 'user' || m.role === 'assistant')
        .map((m) => `${m.role}:${textOf(m.content)}`)
      expect(
        convo.some((m) => m.startsWith('user:') && m.includes('Remember the word PINEAPPLE.')),
      ).toBe(true)
      expect(convo).toContain('assistant:First answer from the model.')
      expect(convo.at(-1)).toContain('What was the word?')
    })
  })
}
