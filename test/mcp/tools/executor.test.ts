import { describe, expect, test } from 'bun:test'
import { createExecutorRegistryClient } from '../../../src/mcp/backends/executor-registry.ts'
import type { WorkerContext } from '../../../src/mcp/context.ts'
import { registerExecutorTools } from '../../../src/mcp/tools/executor.ts'
import { startFakeExecutorRegistry } from '../../../src/testing/fakes/executor-registry.ts'
import { startMcpHarness, textOf } from '../../helpers/mcp-harness.ts'
import { until } from '../../helpers/until.ts'

const ctx: WorkerContext = {
  sessionId: 'ses_1',
  workspaceId: 'ws_42',
  turnId: 'turn_1',
  workspaceDir: '/nonexistent',
}

async function startTools(
  registryUrl: string,
  options: { timeoutMs?: number; progressIntervalMs?: number } = {},
) {
  const registry = createExecutorRegistryClient({ url: registryUrl, ...options })
  return startMcpHarness((server) => registerExecutorTools(server, ctx, { registry }))
}

const schemas: Record<string, { required: string[]; optional: string[] }> = {
  remote_bash: { required: ['command', 'executor_id'], optional: ['description', 'timeout'] },
  remote_read: { required: ['executor_id', 'file_path'], optional: ['limit', 'offset'] },
  remote_edit: {
    required: ['executor_id', 'file_path', 'new_string', 'old_string'],
    optional: ['replace_all'],
  },
  remote_write: { required: ['content', 'executor_id', 'file_path'], optional: [] },
  remote_glob: { required: ['executor_id', 'pattern'], optional: ['path'] },
  remote_grep: {
    required: ['executor_id', 'pattern'],
    optional: ['-A', '-B', '-C', '-i', '-n', 'glob', 'head_limit', 'multiline', 'output_mode']
      .concat(['path', 'type'])
      .sort(),
  },
  remote_ls: { required: ['executor_id', 'path'], optional: ['ignore'] },
  list_executors: { required: [], optional: [] },
}

// One happy-path call per remote tool: what the model sends → what the registry must receive.
const calls = [
  {
    name: 'remote_bash',
    args: { command: 'ls -la', timeout: 5000, description: 'List files' },
    tool: 'Bash',
  },
  { name: 'remote_read', args: { file_path: '/srv/app.ts', offset: 10, limit: 20 }, tool: 'Read' },
  {
    name: 'remote_edit',
    args: { file_path: '/srv/a.ts', old_string: 'x = 1', new_string: 'x = 2', replace_all: true },
    tool: 'Edit',
  },
  { name: 'remote_write', args: { file_path: '/srv/b.txt', content: 'hello\n' }, tool: 'Write' },
  { name: 'remote_glob', args: { pattern: '**/*.ts', path: '/srv' }, tool: 'Glob' },
  {
    name: 'remote_grep',
    args: {
      pattern: 'TODO',
      path: '/srv',
      glob: '*.ts',
      output_mode: 'content',
      '-i': true,
      '-C': 2,
    },
    tool: 'Grep',
  },
  { name: 'remote_ls', args: { path: '/srv', ignore: ['node_modules'] }, tool: 'LS' },
]

describe('executor tools', () => {
  test('tools/list shows every tool with exact required and optional fields, all described', async () => {
    await using registry = await startFakeExecutorRegistry()
    await using mcp = await startTools(registry.url)
    const want = Object.fromEntries(
      Object.entries(schemas).map(([name, s]) => [name, { ...s, strict: true, described: true }]),
    )
    expect(await mcp.shapes()).toEqual(want)
    const { tools } = await mcp.client.listTools()
    for (const tool of tools) {
      expect(tool.description?.length ?? 0).toBeGreaterThan(40)
      expect(tool.title).toBeTruthy()
    }
    const grep = tools.find((t) => t.name === 'remote_grep')
    expect(grep?.inputSchema.properties?.output_mode).toMatchObject({
      enum: ['content', 'files_with_matches', 'count'],
    })
    const read = tools.find((t) => t.name === 'remote_read')
    expect(read?.annotations).toMatchObject({ readOnlyHint: true })
    const bash = tools.find((t) => t.name === 'remote_bash')
    expect(bash?.annotations).toMatchObject({ readOnlyHint: false, destructiveHint: true })
  })

  test.each(calls)('$name forwards $tool with exactly the given arguments', async (c) => {
    await using registry = await startFakeExecutorRegistry()
    await using mcp = await startTools(registry.url)
    registry.script(c.tool, (call) => ({ output: `did ${call.tool}`, exit_code: 0 }))
    const result = await mcp.call(c.name, { executor_id: 'exe_a1', ...c.args })
    expect(result).toEqual({ content: [{ type: 'text', text: `did ${c.tool}` }] })
    expect(registry.requests).toEqual([
      {
        method: 'POST',
        path: '/api/execute',
        query: {},
        body: { executor_id: 'exe_a1', tool: c.tool, arguments: c.args },
      },
    ])
  })

  test('optional arguments that were not given are not sent', async () => {
    await using registry = await startFakeExecutorRegistry()
    await using mcp = await startTools(registry.url)
    const result = await mcp.call('remote_bash', { executor_id: 'exe_a1', command: 'echo hi' })
    expect(result).toEqual({ content: [{ type: 'text', text: 'hi\n' }] })
    expect(registry.requests.map((r) => r.body)).toEqual([
      { executor_id: 'exe_a1', tool: 'Bash', arguments: { command: 'echo hi' } },
    ])
  })

  test.each([
    ['remote_bash', { command: 'ls' }, 'executor_id'],
    ['remote_bash', { executor_id: 'exe_a1' }, 'command'],
    ['remote_bash', { executor_id: 'exe_a1', command: 'ls', timeout: 700_000 }, 'timeout'],
    ['remote_read', { executor_id: 'exe_a1', file_path: '/a', limit: -1 }, 'limit'],
    ['remote_edit', { executor_id: 'exe_a1', file_path: '/a', old_string: 'x' }, 'new_string'],
    ['remote_write', { executor_id: 'exe_a1', file_path: '/a', content: 3 }, 'content'],
    ['remote_glob', { executor_id: 'exe_a1', pattern: '*', recursive: true }, 'recursive'],
    ['remote_grep', { executor_id: 'exe_a1', pattern: 'x', output_mode: 'lines' }, 'output_mode'],
    ['remote_ls', { executor_id: '', path: '/' }, 'executor_id'],
    ['list_executors', { workspace_id: 'other' }, 'workspace_id'],
  ])('%s rejects bad arguments %j (names %s), registry untouched', async (name, args, field) => {
    await using registry = await startFakeExecutorRegistry()
    await using mcp = await startTools(registry.url)
    const result = await mcp.call(name, args)
    expect(result.isError).toBe(true)
    expect(textOf(result)).toContain('Input validation error')
    expect(textOf(result)).toContain(field)
    expect(registry.requests).toEqual([])
  })

  test('a non-zero exit code is an error result with the output and the code', async () => {
    await using registry = await startFakeExecutorRegistry()
    await using mcp = await startTools(registry.url)
    registry.script('Bash', () => ({ output: 'make: *** [all] Error 2\n', exit_code: 2 }))
    const result = await mcp.call('remote_bash', { executor_id: 'exe_a1', command: 'make' })
    expect(result).toEqual({
      content: [
        {
          type: 'text',
          text: 'make: *** [all] Error 2\n[Bash on executor "exe_a1" exited with code 2]',
        },
      ],
      isError: true,
    })
  })

  test.each([
    [
      503,
      'registry overloaded',
      'retry in a moment, or tell the user the executor registry is failing',
    ],
    [404, 'executor exe_zz not found', 'check the executor_id against list_executors'],
    [400, 'bad arguments', 'check the tool arguments and try again'],
  ])(
    'registry %i → error result with the status, the body and what to do',
    async (status, body, advice) => {
      await using registry = await startFakeExecutorRegistry()
      await using mcp = await startTools(registry.url)
      registry.failWith({ status, body })
      const result = await mcp.call('remote_read', { executor_id: 'exe_zz', file_path: '/a' })
      expect(result).toEqual({
        content: [
          {
            type: 'text',
            text:
              `executor registry answered ${status} to POST /api/execute ` +
              `(Read on executor "exe_zz"): ${body}; ${advice}`,
          },
        ],
        isError: true,
      })
    },
  )

  test('a 200 that is not JSON, or lacks output/exit_code, is an error result', async () => {
    await using registry = await startFakeExecutorRegistry()
    await using mcp = await startTools(registry.url)
    registry.script('Bash', () => ({ status: 200, body: '<html>proxy login</html>' }))
    const notJson = await mcp.call('remote_bash', { executor_id: 'exe_a1', command: 'ls' })
    expect(notJson.isError).toBe(true)
    expect(textOf(notJson)).toContain('body that is not JSON: <html>proxy login</html>')
    registry.script('Bash', () => ({ status: 200, body: '{"stdout":"x"}' }))
    const wrongShape = await mcp.call('remote_bash', { executor_id: 'exe_a1', command: 'ls' })
    expect(wrongShape.isError).toBe(true)
    expect(textOf(wrongShape)).toContain('without {output: string, exit_code: number}')
  })

  test('an unreachable registry is an error result saying so', async () => {
    const registry = await startFakeExecutorRegistry()
    await registry.stop()
    await using mcp = await startTools(registry.url)
    const result = await mcp.call('remote_ls', { executor_id: 'exe_a1', path: '/' })
    expect(result.isError).toBe(true)
    expect(textOf(result)).toStartWith(`executor registry at ${registry.url} is unreachable`)
    expect(textOf(result)).toContain('retry in a moment')
  })

  test('a registry slower than timeoutMs → error result; the upstream request is dropped', async () => {
    await using registry = await startFakeExecutorRegistry()
    await using mcp = await startTools(registry.url, { timeoutMs: 200 })
    registry.hold()
    const result = await mcp.call('remote_bash', { executor_id: 'exe_a1', command: 'sleep 999' })
    expect(result.isError).toBe(true)
    expect(textOf(result)).toStartWith(
      'executor registry did not answer POST /api/execute (Bash on executor "exe_a1") within 200 ms',
    )
    await until(() => registry.abortedRequests === 1, { what: 'the registry to see the abort' })
  })

  test('progress notifications arrive while a slow call waits, then the result', async () => {
    await using registry = await startFakeExecutorRegistry()
    await using mcp = await startTools(registry.url, { progressIntervalMs: 20 })
    const release = registry.hold()
    const progress: { progress: number; message?: string }[] = []
    const pending = mcp.call(
      'remote_bash',
      { executor_id: 'exe_a1', command: 'echo done' },
      { onprogress: (p) => progress.push(p) },
    )
    await until(() => progress.length >= 3, { what: 'three progress notifications' })
    release()
    expect(await pending).toEqual({ content: [{ type: 'text', text: 'done\n' }] })
    expect(progress.slice(0, 3).map((p) => p.progress)).toEqual([1, 2, 3])
    expect(progress[0]?.message).toMatch(/^remote_bash on exe_a1: still running after \d+ s$/)
  })

  test('a call without a progress token gets no progress notifications', async () => {
    await using registry = await startFakeExecutorRegistry()
    await using mcp = await startTools(registry.url, { progressIntervalMs: 5 })
    const release = registry.hold()
    // The client reports a progress notification it did not ask for as an error.
    const errors: Error[] = []
    mcp.client.onerror = (err) => void errors.push(err)
    const silent = mcp.call('remote_bash', { executor_id: 'exe_a1', command: 'echo x' })
    // A second call that asked for progress shows that the ticks did happen meanwhile.
    const progress: unknown[] = []
    const witness = mcp.call(
      'remote_bash',
      { executor_id: 'exe_a1', command: 'echo y' },
      { onprogress: (p) => progress.push(p) },
    )
    await until(() => registry.inFlight === 2, { what: 'both calls to reach the registry' })
    await until(() => progress.length >= 3, { what: 'three ticks of the witness' })
    release()
    expect(await silent).toEqual({ content: [{ type: 'text', text: 'x\n' }] })
    expect(await witness).toEqual({ content: [{ type: 'text', text: 'y\n' }] })
    expect(errors).toEqual([])
  })

  test('cancelling the call on the client aborts the registry request', async () => {
    await using registry = await startFakeExecutorRegistry()
    await using mcp = await startTools(registry.url)
    registry.hold()
    const controller = new AbortController()
    const pending = mcp.call(
      'remote_bash',
      { executor_id: 'exe_a1', command: 'sleep 999' },
      { signal: controller.signal },
    )
    await until(() => registry.inFlight === 1, { what: 'the call to reach the registry' })
    controller.abort('user pressed stop')
    await expect(pending).rejects.toThrow()
    await until(() => registry.abortedRequests === 1, { what: 'the registry to see the abort' })
  })

  test('list_executors asks for this workspace and returns the list', async () => {
    await using registry = await startFakeExecutorRegistry()
    await using mcp = await startTools(registry.url)
    const list = [{ id: 'exe_a1', name: 'laptop', status: 'online' }]
    registry.setExecutors(list)
    const result = await mcp.call('list_executors', {})
    expect(result).toEqual({ content: [{ type: 'text', text: JSON.stringify(list, null, 2) }] })
    expect(registry.requests).toEqual([
      { method: 'GET', path: '/api/executors', query: { workspace_id: 'ws_42' }, body: undefined },
    ])
  })

  test('list_executors with a failing registry → error result', async () => {
    await using registry = await startFakeExecutorRegistry()
    await using mcp = await startTools(registry.url)
    registry.failWith({ status: 500, body: 'db down' })
    const result = await mcp.call('list_executors', {})
    expect(result).toEqual({
      content: [
        {
          type: 'text',
          text:
            'executor registry answered 500 to GET /api/executors (workspace "ws_42"): db down; ' +
            'retry in a moment, or tell the user the executor registry is failing',
        },
      ],
      isError: true,
    })
  })
})
