import { describe, expect, test } from 'bun:test'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startFakeAnthropic, lastToolResult } from '../../src/testing/fakes/anthropic.ts'
import { startFakeExecutorRegistry } from '../../src/testing/fakes/executor-registry.ts'
import { startTestBroker } from '../helpers/broker.ts'
import { claudeBin } from '../helpers/claude-bin.ts'
import { databases } from '../helpers/databases.ts'
import { openSse } from '../helpers/sse.ts'

for (const transport of ['ccr', 'stdio'] as const) {
  const bin = claudeBin(transport)
  if (!bin)
    console.log(
      `skip: real Claude Code for ${transport} is not installed; run \`npm run fetch-claude\``,
    )
  describe.skipIf(!bin)(`real Claude Code over ${transport} uses the broker's MCP tools`, () => {
    test('workspace_write then remote_bash really happen, and their results reach the model', async () => {
      await using model = startFakeAnthropic()
      const registry = await startFakeExecutorRegistry()
      await using _registry = { [Symbol.asyncDispose]: () => registry.stop() }
      registry.script('Bash', (call) => ({
        output: `ran on ${call.executor_id}: ${String(call.arguments.command)}\n`,
        exit_code: 0,
      }))
      const seen: string[] = []
      model.script(
        {
          toolUse: {
            name: 'mcp__broker__workspace_write',
            input: { path: 'src/app.txt', content: 'made by the model' },
          },
        },
        (req) => {
          seen.push(JSON.stringify(lastToolResult(req)))
          return {
            toolUse: {
              name: 'mcp__broker__remote_bash',
              input: { executor_id: 'exe_1', command: 'make test' },
            },
          }
        },
        (req) => {
          seen.push(JSON.stringify(lastToolResult(req)))
          return { text: 'All done.' }
        },
      )
      await using b = await startTestBroker({
        db: databases()[0]!,
        env: {
          CCBROKER_CLAUDE_BIN: bin!,
          CCBROKER_WORKER_TRANSPORT: transport,
          CCBROKER_EXECUTOR_REGISTRY_URL: registry.url,
          ANTHROPIC_BASE_URL: model.url,
          ANTHROPIC_API_KEY: 'sk-ant-test-key',
        },
      })
      const res = await fetch(`${b.url}/api/v2/turns`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          session_id: `mcp-e2e-${transport}`,
          workspace_id: 'ws-e2e',
          user_message: 'Build it.',
        }),
      })
      const { events_url } = (await res.json()) as { events_url: string }
      await using stream = await openSse(b.url + events_url)
      const frames: any[] = []
      for (let f = await stream.next(); f; f = await stream.next()) frames.push(f.data)
      if (process.env.DEBUG_E2E)
        for (const f of frames) console.log(JSON.stringify(f.payload).slice(0, 600))
      expect(frames.at(-1).payload).toMatchObject({ type: 'done', state: 'done' })

      const file = join(b.config.workspaceDir, 'ws-e2e', 'project', 'src/app.txt')
      expect(await readFile(file, 'utf8')).toBe('made by the model')
      const executes = registry.requests.filter((r) => r.path === '/api/execute')
      expect(executes.map((r) => r.body)).toEqual([
        { executor_id: 'exe_1', tool: 'Bash', arguments: { command: 'make test' } },
      ])
      expect(seen[0]).toContain('src/app.txt')
      expect(seen[1]).toContain('ran on exe_1: make test')
      // The broker's tools were offered directly (not deferred behind ToolSearch).
      const offered = model
        .messageRequests()
        .at(-1)!
        .body.tools.map((t: any) => t.name)
      expect(offered).toContain('mcp__broker__workspace_write')
      expect(offered).toContain('mcp__broker__remote_bash')
      expect(offered).not.toContain('Bash')
    })
  })
}
