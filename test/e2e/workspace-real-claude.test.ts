import { describe, expect, test } from 'bun:test'
import {
  startFakeAnthropic,
  lastToolResult,
  type RecordedRequest,
} from '../../src/testing/fakes/anthropic.ts'
import { startTestBroker } from '../helpers/broker.ts'
import { claudeBin } from '../helpers/claude-bin.ts'
import { databases } from '../helpers/databases.ts'
import { openSse } from '../helpers/sse.ts'

const agentRequests = (reqs: RecordedRequest[]) =>
  reqs.filter((r) => Array.isArray(r.body?.tools) && r.body.tools.length > 0)

for (const transport of ['ccr', 'stdio'] as const) {
  const bin = claudeBin(transport)
  if (!bin)
    console.log(
      `skip: real Claude Code for ${transport} is not installed; run \`npm run fetch-claude\``,
    )
  describe.skipIf(!bin)(
    `real Claude Code over ${transport} keeps its workspace between turns`,
    () => {
      test('turn one writes a memory file and a project file; turn two, in a fresh directory, sees both', async () => {
        await using model = startFakeAnthropic()
        let readBack = ''
        model.script(
          {
            toolUse: {
              name: 'mcp__broker__workspace_write',
              input: { path: 'CLAUDE.md', content: 'Project memory: the codename is MANGO-7.\n' },
            },
          },
          {
            toolUse: {
              name: 'mcp__broker__workspace_write',
              input: { path: 'docs/plan.txt', content: 'step 1: ship' },
            },
          },
          { text: 'Saved both.' },
          // Turn two.
          { toolUse: { name: 'mcp__broker__workspace_read', input: { path: 'docs/plan.txt' } } },
          (req) => {
            readBack = JSON.stringify(lastToolResult(req))
            return { text: 'The plan says step 1.' }
          },
        )
        await using b = await startTestBroker({
          db: databases()[0]!,
          env: {
            CCBROKER_CLAUDE_BIN: bin!,
            CCBROKER_WORKER_TRANSPORT: transport,
            ANTHROPIC_BASE_URL: model.url,
            ANTHROPIC_API_KEY: 'sk-ant-test-key-never-stored',
            // A process per turn: turn two starts in a fresh directory from the store.
            CCBROKER_WORKER_IDLE_MS: '0',
          },
        })
        const run = async (text: string) => {
          const res = await fetch(`${b.url}/api/v2/turns`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({
              session_id: `ws-e2e-${transport}`,
              workspace_id: 'ws-mem',
              user_message: text,
            }),
          })
          const { events_url } = (await res.json()) as { events_url: string }
          await using stream = await openSse(b.url + events_url)
          const frames: any[] = []
          for (let f = await stream.next(); f; f = await stream.next()) frames.push(f.data)
          expect(frames.at(-1).payload).toMatchObject({ type: 'done', state: 'done' })
          return frames
        }

        const first = await run('Write the memory and the plan.')
        const pushed = first.find((f) => f.event_type === 'workspace_pushed')
        expect(pushed.payload.files).toBeGreaterThanOrEqual(2)
        const turnOneRequests = agentRequests(model.messageRequests()).length

        const second = await run('What does the plan say, and what is the codename?')
        const pulled = second.find((f) => f.event_type === 'workspace_pulled')
        expect(pulled.payload.files).toBeGreaterThanOrEqual(2)
        // The project file came back through the store into a fresh working directory.
        expect(readBack).toContain('step 1: ship')
        // The memory file was loaded by Claude Code into turn two's context.
        const turnTwo = agentRequests(model.messageRequests()).slice(turnOneRequests)
        expect(JSON.stringify(turnTwo[0]!.body)).toContain('MANGO-7')
        // And the conversation continued: turn one's user message is in turn two's request.
        expect(JSON.stringify(turnTwo[0]!.body.messages)).toContain(
          'Write the memory and the plan.',
        )
        // The API key never reached the workspace store.
        const stored = await Array.fromAsync(
          new Bun.Glob('**/*').scan({ cwd: b.config.workspaceDir, dot: true }),
        )
        for (const path of stored) {
          const text = await Bun.file(`${b.config.workspaceDir}/${path}`).text()
          expect(text.includes('sk-ant-test-key-never-stored')).toBe(false)
        }
      })
    },
  )
}
