import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { runCli, spawnCli } from '../helpers/cli.ts'
import { databases } from '../helpers/databases.ts'
import { newSessionId, startTurnBroker, type TurnBroker } from '../helpers/turns.ts'

const SUMMARY = /^✓ done in \d+\.\d s · \$0\.0123 · 10 in \/ 5 out tokens$/

describe('cc-broker turn', () => {
  let b: TurnBroker
  beforeAll(async () => {
    b = await startTurnBroker({ db: databases()[0]!, transport: 'stdio' })
  })
  afterAll(() => b.stop())

  const turn = (sessionId: string, ...args: string[]) =>
    spawnCli(['turn', '--session', sessionId, ...args], { env: { CCBROKER_URL: b.url } })

  test('shows the message, the tool call with its outcome, the reply once, and a summary line', async () => {
    const sessionId = newSessionId()
    const held = b.control.hold(sessionId)
    await using cli = turn(sessionId, 'list', 'the files')
    expect((await held.arrived).text).toBe('list the files')
    held.release({
      reply: 'There are two files.',
      steps: [
        { tool: 'Bash', input: { command: 'ls -la', description: 'List' }, output: 'a.txt\nb.txt' },
      ],
    })
    const run = await cli.finished()
    expect(run.exitCode).toBe(0)
    const lines = run.stdout.split('\n')
    expect(lines).toEqual([
      '› list the files',
      '⏺ Bash(command: "ls -la", description: "List")',
      '  ⎿ ok: a.txt',
      'There are two files.',
      expect.stringMatching(SUMMARY),
    ])
    expect(run.stderr).toBe('')
    // The session was made with the default workspace, and the turn is done there too.
    const session = await b.api('GET', `/v1/sessions/${sessionId}`)
    expect(session.body.session.workspace_id).toBe('default')
  })

  test('a failed tool call is shown as an error, and a long input is cut to one line', async () => {
    const sessionId = newSessionId()
    const held = b.control.hold(sessionId)
    await using cli = turn(sessionId, '--workspace', 'ws-cli', 'write it')
    await held.arrived
    const long = 'x'.repeat(200)
    held.release({
      reply: 'Could not.',
      steps: [
        {
          tool: 'Write',
          input: { file_path: '/tmp/f', content: long },
          output: 'denied\nmore',
          isError: true,
        },
      ],
    })
    const run = await cli.finished()
    expect(run.exitCode).toBe(0)
    const toolLine = run.stdout.split('\n')[1]!
    expect(toolLine.startsWith('⏺ Write(file_path: "/tmp/f", content: "xxx')).toBe(true)
    expect(toolLine.endsWith('…)')).toBe(true)
    expect(toolLine.length).toBeLessThan(100)
    expect(run.stdout.split('\n')[2]).toBe('  ⎿ error: denied')
    expect((await b.api('GET', `/v1/sessions/${sessionId}`)).body.session.workspace_id).toBe(
      'ws-cli',
    )
  })

  test('--json prints every event of the turn as one JSON object per line, ending with done', async () => {
    const sessionId = newSessionId()
    const held = b.control.hold(sessionId)
    await using cli = turn(sessionId, '--json', 'hello')
    await held.arrived
    held.release({ reply: 'Hi.', steps: [{ tool: 'Read', input: { file_path: 'x' } }] })
    const run = await cli.finished()
    expect(run.exitCode).toBe(0)
    const events = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    const turnId = events[0].turn_id
    expect(events.every((e) => e.turn_id === turnId)).toBe(true)
    const seqs = events.map((e) => e.sequence_num)
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
    expect(events[0]).toMatchObject({ source: 'client', event_type: 'user' })
    expect(events.map((e) => e.event_type)).toEqual(expect.arrayContaining(['assistant', 'result']))
    expect(events.at(-1)).toMatchObject({
      source: 'broker',
      event_type: 'done',
      payload: { state: 'done', result: { result: 'Hi.' } },
    })
    // The answer's partial frames come live; the broker keeps every other event.
    expect(events.some((e) => e.ephemeral && e.event_type === 'stream_event')).toBe(true)
    const kept = await b.api('GET', `/v1/sessions/${sessionId}/events?limit=1000`)
    expect(kept.body.data.map((e: any) => e.sequence_num)).toEqual(
      events.filter((e) => !e.ephemeral).map((e) => e.sequence_num),
    )
  })

  test('the first Ctrl-C cancels the running turn and exits 130', async () => {
    const sessionId = newSessionId()
    const held = b.control.hold(sessionId)
    await using cli = turn(sessionId, 'wait forever')
    const arrived = await held.arrived
    // The CLI knows the turn once it has shown its first event.
    await cli.stdout.until((l) => l === '› wait forever')
    cli.proc.kill('SIGINT')
    const run = await cli.finished()
    expect(run.exitCode).toBe(130)
    expect(run.stderr).toContain('cancelling the turn')
    expect(run.stdout.split('\n').at(-1)).toMatch(/^■ cancelled in \d+\.\d s/)
    const turns = await b.api('GET', `/v1/sessions/${sessionId}/turns`)
    expect(turns.body.data.map((t: any) => t.state)).toEqual(['cancelled'])
    expect(arrived.session_id).toBe(sessionId)
  })

  test('a failed turn exits 1 with its error on the last line', async () => {
    await using failing = await startTurnBroker({
      db: databases()[0]!,
      transport: 'stdio',
      workerEnv: { FAKE_CLAUDE_SCENARIO: 'crash' },
    })
    const run = await runCli(['turn', '--url', failing.url, '--session', newSessionId(), 'hi'])
    expect(run.exitCode).toBe(1)
    expect(run.stdout.trim().split('\n').at(-1)).toMatch(/^✗ failed in \d+\.\d s · .*exit/)
  })

  test('without --session, or without a message, it is a usage error (exit 2) and sends nothing', async () => {
    const before = await b.api('GET', '/v1/sessions?limit=500')
    const noSession = await runCli(['turn', '--url', b.url, 'hi'])
    expect(noSession).toMatchObject({ exitCode: 2, stdout: '' })
    expect(noSession.stderr).toContain('--session is required')
    const noMessage = await runCli(['turn', '--url', b.url, '--session', 's-x'])
    expect(noMessage.exitCode).toBe(2)
    expect(noMessage.stderr).toContain('give the message')
    const after = await b.api('GET', '/v1/sessions?limit=500')
    expect(after.body.data.length).toBe(before.body.data.length)
  })

  test('an API key is sent from --api-key or CCBROKER_API_KEY; a wrong one is a clear error', async () => {
    await using keyed = await startTurnBroker({
      db: databases()[0]!,
      transport: 'stdio',
      env: { CCBROKER_API_KEYS: 'key-right-0123456789' },
      workerEnv: { FAKE_CLAUDE_SCENARIO: 'echo' },
    })
    const wrong = await runCli([
      'turn',
      '--url',
      keyed.url,
      '--api-key',
      'key-wrong-0123456789',
      '--session',
      's1',
      'hi',
    ])
    expect(wrong.exitCode).toBe(1)
    expect(wrong.stderr).toMatch(/401/)
    const right = await runCli(['turn', '--url', keyed.url, '--session', newSessionId(), 'hi'], {
      env: { CCBROKER_API_KEY: 'key-right-0123456789' },
    })
    expect(right.exitCode).toBe(0)
    expect(right.stdout).toContain('echo: hi')
  })

  test('an unreachable broker is a one-line error, exit 1', async () => {
    const run = await runCli(['turn', '--url', 'http://127.0.0.1:9', '--session', 's1', 'hi'])
    expect(run.exitCode).toBe(1)
    expect(run.stderr.trim().split('\n')).toHaveLength(1)
    expect(run.stderr).toContain('is a broker running there?')
  })
})
