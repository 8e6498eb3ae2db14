import { describe, expect, test } from 'bun:test'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startTestBroker } from '../helpers/broker.ts'
import { databases } from '../helpers/databases.ts'
import { fakeClaudeBin } from '../helpers/fake-claude.ts'
import { openSse } from '../helpers/sse.ts'
import { tempDir } from '../helpers/temp-dir.ts'

const runTurn = async (url: string, body: Record<string, unknown>) => {
  const res = await fetch(`${url}/api/v2/turns`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  expect(res.status).toBe(202)
  const { turn_id, events_url } = (await res.json()) as { turn_id: string; events_url: string }
  await using stream = await openSse(url + events_url)
  const frames: any[] = []
  for (let f = await stream.next(); f; f = await stream.next()) frames.push(f.data)
  return { turnId: turn_id, frames }
}

describe.each(['stdio', 'ccr'] as const)('the worker MCP server over %s', (transport) => {
  test('a worker calls workspace_write through its MCP server and the file lands in its directory', async () => {
    await using dir = await tempDir()
    const bin = await fakeClaudeBin(dir.path)
    await using b = await startTestBroker({
      db: databases()[0]!,
      env: {
        CCBROKER_CLAUDE_BIN: bin,
        CCBROKER_WORKER_TRANSPORT: transport,
        CCBROKER_WORKER_ENV: JSON.stringify({
          FAKE_CLAUDE_SCENARIO: 'mcp',
          FAKE_CLAUDE_MCP_TOOL: 'workspace_write',
          FAKE_CLAUDE_MCP_ARGS: JSON.stringify({ path: 'notes/hello.txt', content: 'hi there' }),
          FAKE_CLAUDE_RECORD_DIR: dir.path,
        }),
      },
    })
    const { frames } = await runTurn(b.url, {
      session_id: `mcp-${transport}`,
      workspace_id: 'ws',
      user_message: 'write it',
    })
    const done = frames.at(-1)
    expect(done.payload.state).toBe('done')
    const assistant = frames.find((f) => f.event_type === 'assistant')
    expect(JSON.stringify(assistant.payload)).toContain('notes/hello.txt')
    // The turn's project directory was pushed to the workspace store when the turn ended.
    const file = join(b.config.workspaceDir, 'ws', 'project', 'notes/hello.txt')
    expect(await readFile(file, 'utf8')).toBe('hi there')
    const init = frames.find((f) => f.event_type === 'system')
    expect(init.payload.mcp_servers).toEqual([{ name: 'broker', status: 'connected' }])
  })
})
