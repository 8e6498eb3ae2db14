import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startTestBroker } from '../helpers/broker.ts'
import { databases } from '../helpers/databases.ts'
import { newSessionId, startTurnBroker, type TurnBroker } from '../helpers/turns.ts'

/** The Claude Code session options a worker was started with. */
const sessionArgs = (argv: string[]) =>
  argv.flatMap((a, i) =>
    a === '--resume' || a === '--session-id'
      ? [a, argv[i + 1]!]
      : a === '--fork-session'
        ? [a]
        : [],
  )

describe.each(databases())('forked sessions on $name', (db) => {
  let b: TurnBroker
  beforeAll(async () => {
    // A process per turn, so that each turn's argv shows how it continues its conversation.
    b = await startTurnBroker({ db, transport: 'stdio', env: { CCBROKER_WORKER_IDLE_MS: '0' } })
  })
  afterAll(() => b.stop())

  const run = async (sessionId: string, text: string) => {
    const { turn_id } = await b.enqueue({
      session_id: sessionId,
      workspace_id: 'ws-fork',
      user_message: text,
    })
    return b.waitState(turn_id, ['done', 'failed'])
  }

  test('a fork’s first turn resumes the source’s conversation with --fork-session; then the two go their own ways', async () => {
    const source = newSessionId('src')
    await run(source, 'one')
    await run(source, 'two')
    const src = (await b.api('GET', `/v1/sessions/${source}`)).body.session

    const forked = await b.api('POST', `/v1/sessions/${source}/fork`, { title: 'what if' })
    expect(forked.status).toBe(201)
    const fork = forked.body.session
    // A copy: bun's toMatchObject writes its matchers into the object it is given.
    expect({ ...fork }).toMatchObject({
      id: expect.stringMatching(/^cse_/),
      workspace_id: 'ws-fork',
      title: 'what if',
      source: 'fork',
      forked_from: source,
      budget_usd: null,
    })
    expect(fork.claude_session_id).not.toBe(src.claude_session_id)
    // The source's events are not copied.
    expect((await b.api('GET', `/v1/sessions/${fork.id}/events`)).body.data).toEqual([])

    // The fake echoes how many prompts its conversation held before this one.
    expect((await run(fork.id, 'fork one')).result.result).toBe('echo: fork one (history: 2)')
    expect((await run(fork.id, 'fork two')).result.result).toBe('echo: fork two (history: 3)')
    expect((await run(source, 'three')).result.result).toBe('echo: three (history: 2)')
    const forkWorkers = await b.workers(fork.id)
    expect(forkWorkers.map((w) => sessionArgs(w.argv))).toEqual([
      ['--resume', src.claude_session_id, '--fork-session', '--session-id', fork.claude_session_id],
      ['--resume', fork.claude_session_id],
    ])
    expect((await b.workers(source)).map((w) => sessionArgs(w.argv)).at(-1)).toEqual([
      '--resume',
      src.claude_session_id,
    ])
    // The store keeps each session's own transcript only: the source's copy was not stored again.
    const stored = (id: string) =>
      readdir(
        join(b.config.workspaceDir, 'ws-fork', 'claude-home', 'projects', `ccbroker-session-${id}`),
      )
    expect((await stored(fork.id)).filter((n) => n.endsWith('.jsonl'))).toEqual([
      `${fork.claude_session_id}.jsonl`,
    ])
    expect((await stored(source)).filter((n) => n.endsWith('.jsonl'))).toEqual([
      `${src.claude_session_id}.jsonl`,
    ])
  })

  test('a chosen session_id is used once (then 409); an unknown source → 404; a fork of a session with no turn starts fresh', async () => {
    const source = newSessionId('src')
    const fresh = await b.api('POST', '/v1/sessions', { workspace_id: 'ws-fork' })
    const id = newSessionId('fork')
    const forked = await b.api('POST', `/v1/sessions/${fresh.body.session.id}/fork`, {
      session_id: id,
    })
    expect([forked.status, forked.body.session.id, forked.body.session.title]).toEqual([
      201,
      id,
      '',
    ])
    expect(
      (await b.api('POST', `/v1/sessions/${fresh.body.session.id}/fork`, { session_id: id })).body,
    ).toEqual({
      error: `session ${id} already exists`,
    })
    expect((await b.api('POST', `/v1/sessions/${source}/fork`, {})).status).toBe(404)
    expect((await run(id, 'hello')).result.result).toBe('echo: hello')
    const [worker] = await b.workers(id)
    expect(sessionArgs(worker!.argv)).toEqual([
      '--session-id',
      forked.body.session.claude_session_id,
    ])
  })
})

test('under the ccr transport a fork is refused with 409, saying why', async () => {
  await using b = await startTestBroker({
    db: databases()[0]!,
    env: { CCBROKER_WORKER_TRANSPORT: 'ccr' },
  })
  const s = (await b.api('POST', '/v1/sessions', { workspace_id: 'ws-ccr' })).body.session
  expect(await b.api('POST', `/v1/sessions/${s.id}/fork`, {})).toEqual({
    status: 409,
    headers: expect.any(Headers),
    body: { error: expect.stringMatching(/^forking needs the stdio worker transport/) },
  })
})
