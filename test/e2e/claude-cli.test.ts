// Real Claude Code against the fake Anthropic API, fully offline. Proves the fake speaks enough of
// the Messages API for both pinned CLI versions; the broker's e2e tests build on it.
import { describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startFakeAnthropic, lastToolResult } from '../../src/testing/fakes/anthropic.ts'
import type { FakeAnthropic, RecordedRequest } from '../../src/testing/fakes/anthropic.ts'
import { claudeBin, claudeTestEnv } from '../helpers/claude-bin.ts'

const stdioBin = claudeBin('stdio')
const ccrBin = claudeBin('ccr')
for (const [transport, bin] of [
  ['stdio (2.1.332)', stdioBin],
  ['ccr (2.1.120)', ccrBin],
] as const)
  if (!bin) console.log(`skip: no Claude Code for ${transport}; run \`npm run fetch-claude\``)

// A fresh working directory, HOME and config directory per test, removed on dispose.
function claudeDirs() {
  const root = mkdtempSync(join(tmpdir(), 'ccbroker-claude-'))
  const dirs = { cwd: join(root, 'cwd'), home: join(root, 'home'), config: join(root, 'config') }
  for (const dir of Object.values(dirs)) mkdirSync(dir)
  return { ...dirs, [Symbol.asyncDispose]: () => rm(root, { recursive: true, force: true }) }
}

type Dirs = ReturnType<typeof claudeDirs>

type Run = { bin: string; args: string[]; dirs: Dirs; fake: FakeAnthropic; stdin?: string }

async function runClaude({ bin, args, dirs, fake, stdin = '' }: Run) {
  const env = claudeTestEnv({
    HOME: dirs.home,
    CLAUDE_CONFIG_DIR: dirs.config,
    ANTHROPIC_BASE_URL: fake.url,
    ANTHROPIC_API_KEY: 'sk-ant-test-key',
  })
  await using proc = Bun.spawn([bin, ...args], {
    cwd: dirs.cwd,
    env,
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  proc.stdin.write(stdin)
  await proc.stdin.end()
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ])
  return { code, stdout, stderr }
}

const streamJson = ['-p', '--input-format', 'stream-json', '--output-format', 'stream-json']
const streamArgs = [...streamJson, '--verbose']

const userLine = (text: string) =>
  JSON.stringify({ type: 'user', message: { role: 'user', content: text } }) + '\n'

const jsonLines = (stdout: string): any[] =>
  stdout
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line))

// The conversation the model saw: user/assistant turns with their text and block types, minus
// the <system-reminder> blocks and role:'system' messages Claude Code injects.
const conversationOf = (request: RecordedRequest) =>
  (request.body.messages as any[])
    .filter((m) => m.role === 'user' || m.role === 'assistant')
    .map((m) => ({
      role: m.role,
      content: (typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : m.content)
        .filter((b: any) => !(b.type === 'text' && b.text.startsWith('<system-reminder>')))
        .map((b: any) => (b.type === 'text' ? b.text : b.type)),
    }))

// Claude Code's project folder: the working directory with every non-alphanumeric turned into '-'.
const transcriptPath = (dirs: Dirs, sessionId: string) =>
  join(dirs.config, 'projects', dirs.cwd.replace(/[^A-Za-z0-9]/g, '-'), `${sessionId}.jsonl`)

describe.skipIf(!stdioBin)('Claude Code 2.1.332 over stdio', () => {
  const bin = stdioBin ?? ''

  test.concurrent('a stream-json turn gets the fake text; --resume sends it back', async () => {
    await using fake = startFakeAnthropic()
    await using dirs = claudeDirs()
    const sessionId = crypto.randomUUID()

    const first = await runClaude({
      bin,
      args: [...streamArgs, '--session-id', sessionId],
      dirs,
      fake,
      stdin: userLine('First prompt.'),
    })
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' })
    const lines = jsonLines(first.stdout)
    expect(lines.map((l) => [l.type, l.subtype ?? null])).toEqual([
      ['system', 'init'],
      ['assistant', null],
      ['result', 'success'],
    ])
    expect(lines[0].session_id).toBe(sessionId)
    expect(lines[1].message.content).toEqual([{ type: 'text', text: 'Hello from the fake model.' }])
    expect(lines[2]).toMatchObject({
      is_error: false,
      result: 'Hello from the fake model.',
      session_id: sessionId,
    })
    // The transcript lands under CLAUDE_CONFIG_DIR; HOME stays empty.
    expect(existsSync(transcriptPath(dirs, sessionId))).toBe(true)
    expect(readdirSync(dirs.home)).toEqual([])

    fake.script('Second answer.')
    const second = await runClaude({
      bin,
      args: [...streamArgs, '--resume', sessionId],
      dirs,
      fake,
      stdin: userLine('Second prompt.'),
    })
    expect({ code: second.code, stderr: second.stderr }).toEqual({ code: 0, stderr: '' })
    expect(jsonLines(second.stdout).at(-1)).toMatchObject({
      type: 'result',
      subtype: 'success',
      result: 'Second answer.',
      session_id: sessionId,
    })

    const [turn1, turn2, ...more] = fake.messageRequests()
    expect(more).toEqual([])
    expect(conversationOf(turn1!)).toEqual([{ role: 'user', content: ['First prompt.'] }])
    expect(conversationOf(turn2!)).toEqual([
      { role: 'user', content: ['First prompt.'] },
      { role: 'assistant', content: ['Hello from the fake model.'] },
      { role: 'user', content: ['Second prompt.'] },
    ])
    // 2.1.332 makes no other request: no HEAD /, no title or token-count side call.
    const sessionOf = (r: RecordedRequest) => r.headers['x-claude-code-session-id']
    expect(fake.requests.map((r) => [r.method, r.path, r.query, sessionOf(r)])).toEqual([
      ['POST', '/v1/messages', { beta: 'true' }, sessionId],
      ['POST', '/v1/messages', { beta: 'true' }, sessionId],
    ])
  })

  test.concurrent('a scripted tool_use runs and its tool_result reaches the model', async () => {
    await using fake = startFakeAnthropic()
    await using dirs = claudeDirs()
    const file = join(dirs.cwd, 'hello.txt')
    await Bun.write(file, 'contents of hello\n')
    fake.script({ toolUse: { name: 'Read', input: { file_path: file } } }, (request) => {
      const result = lastToolResult(request)
      return `The tool said: ${result?.isError ? 'error ' : ''}${result?.text}`
    })

    const run = await runClaude({ bin, args: streamArgs, dirs, fake, stdin: userLine('Read it.') })
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' })
    const lines = jsonLines(run.stdout)
    expect(lines.map((l) => [l.type, l.message?.content?.[0]?.type ?? l.subtype])).toEqual([
      ['system', 'init'],
      ['assistant', 'tool_use'],
      ['user', 'tool_result'],
      ['assistant', 'text'],
      ['result', 'success'],
    ])
    expect(lines.at(-1).result).toStartWith('The tool said: ')
    expect(lines.at(-1).result).toContain('contents of hello')
    expect(fake.pendingReplies()).toBe(0)
  })

  test.concurrent('a 529 with x-should-retry: false → error result, exit 1', async () => {
    await using fake = startFakeAnthropic()
    await using dirs = claudeDirs()
    fake.fail(1, { status: 529, shouldRetry: false })

    const run = await runClaude({ bin, args: streamArgs, dirs, fake, stdin: userLine('Hi.') })
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 1, stderr: '' })
    expect(jsonLines(run.stdout).at(-1)).toMatchObject({
      type: 'result',
      is_error: true,
      api_error_status: 529,
      terminal_reason: 'api_error',
    })
    expect(fake.messageRequests()).toHaveLength(1)
  })

  test.concurrent('a retryable 529 shows as api_retry, then the turn succeeds', async () => {
    await using fake = startFakeAnthropic()
    await using dirs = claudeDirs()
    fake.fail(1, { status: 529 })

    const run = await runClaude({ bin, args: streamArgs, dirs, fake, stdin: userLine('Hi.') })
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' })
    const lines = jsonLines(run.stdout)
    expect(lines.find((l) => l.subtype === 'api_retry')).toMatchObject({
      type: 'system',
      attempt: 1,
      error_status: 529,
    })
    expect(lines.at(-1)).toMatchObject({
      type: 'result',
      is_error: false,
      result: 'Hello from the fake model.',
    })
    expect(fake.messageRequests()).toHaveLength(2)
  })
})

describe.skipIf(!ccrBin)('Claude Code 2.1.120 in stdio mode', () => {
  const bin = ccrBin ?? ''

  test.concurrent('plain claude -p prints the fake text', async () => {
    await using fake = startFakeAnthropic({ text: 'Plain answer from the fake.' })
    await using dirs = claudeDirs()

    const run = await runClaude({ bin, args: ['-p', 'Say hello please.'], dirs, fake })
    expect(run).toEqual({ code: 0, stdout: 'Plain answer from the fake.\n', stderr: '' })
    // 2.1.120 checks connectivity with HEAD / before its one model request.
    expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'HEAD /',
      'POST /v1/messages',
    ])
    expect(conversationOf(fake.messageRequests()[0]!)).toEqual([
      { role: 'user', content: ['Say hello please.'] },
    ])
  })
})
