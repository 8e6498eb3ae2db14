import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync } from 'node:fs'
import { chmod, readdir, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { createFakeOpenViking, type FakeOpenViking } from '../fakes/openviking.ts'
import { databases } from '../helpers/databases.ts'
import type { SseFrame } from '../helpers/sse.ts'
import { tempDir, type TempDir } from '../helpers/temp-dir.ts'
import {
  newSessionId,
  postTurn,
  readAll,
  startTurnBroker,
  TRANSPORTS,
  type Transport,
  type TurnBroker,
} from '../helpers/turns.ts'

const FIXTURE = resolve(import.meta.dir, '../../src/testing/fake-claude/main.ts')
const quoted = (value: string) => `"${value.replace(/[\\"$`]/g, '\\$&')}"`
const batchPath = '/api/v1/content/batch-write'
const downloadPath = '/api/v1/content/download'
// The broker's OpenViking client tries each request 6 times, and the sync tries a push 3 times.

/**
 * Writes `<dir>/claude`: the fake CLI, whose scenario a turn picks with its model:
 * `fake:<scenario>[:<delay ms>]`, or `fake:mcp:<tool>:<base64 JSON arguments>` to call one of
 * the broker's tools. Turns of one broker then call different tools.
 */
async function toolClaudeBin(dir: string): Promise<string> {
  const path = join(dir, 'claude')
  await writeFile(
    path,
    [
      '#!/bin/sh',
      'prev=',
      'for a in "$@"; do',
      '  if [ "$prev" = "--model" ]; then',
      '    case "$a" in fake:*)',
      '      s="${a#fake:}"; export FAKE_CLAUDE_SCENARIO="${s%%:*}"; rest="${s#*:}"',
      '      if [ "$rest" != "$s" ]; then',
      '        if [ "$FAKE_CLAUDE_SCENARIO" = mcp ]; then',
      '          export FAKE_CLAUDE_MCP_TOOL="${rest%%:*}"',
      '          FAKE_CLAUDE_MCP_ARGS="$(printf %s "${rest#*:}" | base64 -d)"',
      '          export FAKE_CLAUDE_MCP_ARGS',
      '        else export FAKE_CLAUDE_DELAY_MS="$rest"; fi',
      '      fi;;',
      '    esac',
      '  fi',
      '  prev="$a"',
      'done',
      `exec ${quoted(process.execPath)} --no-env-file ${quoted(FIXTURE)} "$@"`,
      '',
    ].join('\n'),
  )
  await chmod(path, 0o755)
  return path
}

const tool = (name: string, args: Record<string, unknown>) => ({
  model: `fake:mcp:${name}:${Buffer.from(JSON.stringify(args)).toString('base64')}`,
})

type Payload = Record<string, any>
/** The payloads of a turn's events of `type`, less the id every event gets. */
const payloadsOf = (frames: SseFrame[], type: string): Payload[] =>
  frames
    .filter((f) => f.data.event_type === type)
    .map(({ data: { payload } }) => {
      const { uuid: _uuid, ...rest } = payload
      return rest
    })
const replyOf = (frames: SseFrame[]) => payloadsOf(frames, 'done')[0]?.result?.result
const stateOf = (frames: SseFrame[]) => payloadsOf(frames, 'done')[0]?.state

async function runTurn(b: TurnBroker, body: Record<string, unknown>) {
  const stream = await postTurn(b.url, body)
  if (stream.status !== 200) throw new Error(`POST /api/turns → ${stream.status}`)
  return readAll(stream)
}

/** Every file below `dir` by relative path, as text. */
async function textTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  if (!existsSync(dir)) return out
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true }))
    if (e.isFile()) {
      const full = join(e.parentPath, e.name)
      out[full.slice(dir.length + 1)] = await readFile(full, 'utf8')
    }
  return out
}

const claudeSessionId = async (b: TurnBroker, sessionId: string): Promise<string> =>
  (await b.api('GET', `/v1/sessions/${sessionId}`)).body.session.claude_session_id
/** Where Claude Code keeps a session's transcript, relative to its config dir. */
/**
 * Where the store keeps a stdio session's transcript: under a key of the session, not of the
 * replica's working directory (which Claude Code uses locally).
 */
const transcriptOf = (sessionId: string, claudeId: string) =>
  `projects/ccbroker-session-${sessionId}/${claudeId}.jsonl`

describe.each(TRANSPORTS)('workspace sync around turns on %s with the local store', (transport) => {
  let b: TurnBroker
  let dir: TempDir
  beforeAll(async () => {
    dir = await tempDir()
    b = await startTurnBroker({
      db: databases()[0]!,
      transport,
      env: {
        CCBROKER_CLAUDE_BIN: await toolClaudeBin(dir.path),
        CCBROKER_WORKSPACE_DIR: join(dir.path, 'workspaces'),
        // A process per turn: each turn's worker starts from the store in a fresh directory.
        CCBROKER_WORKER_IDLE_MS: '0',
      },
    })
  })
  afterAll(async () => {
    await b.stop()
    await dir[Symbol.asyncDispose]()
  })

  test.concurrent(
    'a project file written in turn one is in the store, and turn two, a new worker in a fresh directory, reads it back; the conversation continues',
    async () => {
      const sessionId = newSessionId()
      const ws = `ws-${sessionId}`
      const turn = (user_message: string, metadata: Record<string, unknown>) =>
        runTurn(b, { session_id: sessionId, workspace_id: ws, user_message, metadata })
      const plan = '# plan\nstep 1: tests ✓\n'

      const one = await turn(
        'write the plan',
        tool('workspace_write', { path: 'notes/plan.md', content: plan }),
      )
      expect(stateOf(one)).toBe('done')
      const turnOne = payloadsOf(one, 'done')[0]!.turn_id
      const claudeId = await claudeSessionId(b, sessionId)
      const stored = await textTree(join(dir.path, 'workspaces', ws))
      // A stdio worker keeps its transcript in its config dir; a CCR worker posts it to the broker.
      const transcript = transcriptOf(sessionId, claudeId)
      expect(Object.keys(stored).sort()).toEqual(
        transport === 'stdio'
          ? [`claude-home/${transcript}`, 'project/notes/plan.md']
          : ['project/notes/plan.md'],
      )
      expect(stored['project/notes/plan.md']).toBe(plan)
      const storedBytes = Object.values(stored).reduce((n, s) => n + Buffer.byteLength(s), 0)
      expect(payloadsOf(one, 'workspace_pulled')).toEqual([
        {
          type: 'workspace_pulled',
          workspace_id: ws,
          files: 0,
          bytes: 0,
          ms: expect.any(Number),
          turn_id: turnOne,
        },
      ])
      expect(payloadsOf(one, 'workspace_pushed')).toEqual([
        {
          type: 'workspace_pushed',
          workspace_id: ws,
          files: Object.keys(stored).length,
          deleted: 0,
          bytes: storedBytes,
          skipped: [],
          ms: expect.any(Number),
          turn_id: turnOne,
        },
      ])
      // The turn's directories are gone: the next worker starts from the store alone.
      expect(existsSync(join(b.dataDir, 'run', sessionId))).toBe(false)

      const two = await turn('read the plan', tool('workspace_read', { path: 'notes/plan.md' }))
      expect([stateOf(two), replyOf(two)]).toEqual(['done', plan])
      expect(payloadsOf(two, 'workspace_pulled')).toEqual([
        {
          type: 'workspace_pulled',
          workspace_id: ws,
          files: Object.keys(stored).length,
          bytes: storedBytes,
          ms: expect.any(Number),
          turn_id: payloadsOf(two, 'done')[0]!.turn_id,
        },
      ])
      const three = await turn('what did we do?', { model: 'fake:echo' })
      expect(replyOf(three)).toBe('echo: what did we do? (history: 2)')

      const workers = await b.workers(sessionId)
      expect(workers.map((w) => w.cwd)).toEqual(
        Array(3).fill(join(b.dataDir, 'run', sessionId, 'project')),
      )
      expect(new Set(workers.map((w) => w.pid)).size).toBe(3)
      // Turns two and three resume; on stdio from the transcript that came back from the store.
      const resumed = (argv: string[]) =>
        argv.includes('--resume') ? argv[argv.indexOf('--resume') + 1] : null
      expect(workers.map((w) => resumed(w.argv))).toEqual([null, claudeId, claudeId])
    },
  )

  // A CCR v2 worker posts its transcript to the broker instead of its config dir.
  if (transport === 'stdio')
    test.concurrent(
      'two sessions of one workspace running turns at once both keep their transcripts',
      async () => {
        const ws = `ws-shared-${crypto.randomUUID().slice(0, 8)}`
        const sessions = [newSessionId('a'), newSessionId('b')] as const
        const turns = await Promise.all(
          sessions.map((sessionId) =>
            runTurn(b, {
              session_id: sessionId,
              workspace_id: ws,
              user_message: `hello from ${sessionId}`,
              metadata: { model: 'fake:slow:1500' },
            }),
          ),
        )
        expect(turns.map(stateOf)).toEqual(['done', 'done'])
        const [t1, t2] = await Promise.all(
          turns.map(async (frames) => b.turn(payloadsOf(frames, 'done')[0]!.turn_id)),
        )
        // They did overlap: each started before the other finished.
        expect([t1!.started_at < t2!.finished_at, t2!.started_at < t1!.finished_at]).toEqual([
          true,
          true,
        ])

        const stored = await textTree(join(dir.path, 'workspaces', ws))
        const transcripts = await Promise.all(
          sessions.map(async (s) => `claude-home/${transcriptOf(s, await claudeSessionId(b, s))}`),
        )
        expect(Object.keys(stored).sort()).toEqual([...transcripts].sort())
        for (const [i, s] of sessions.entries())
          expect(stored[transcripts[i]!]).toContain(`"content":"hello from ${s}"`)
        // Each session goes on from its own transcript.
        const next = await runTurn(b, {
          session_id: sessions[0],
          workspace_id: ws,
          user_message: 'again',
          metadata: { model: 'fake:echo' },
        })
        expect(replyOf(next)).toBe('echo: again (history: 1)')
      },
    )
})

interface OpenVikingBroker extends AsyncDisposable {
  b: TurnBroker
  fake: FakeOpenViking
  storeName: string
  /** Stored paths of workspace `ws`, OpenViking's sidecars and the store's manifest left out. */
  storedPaths(ws: string): string[]
}

/** A broker whose workspace store is a fake OpenViking of its own (failNext is per fake). */
async function openVikingBroker(transport: Transport): Promise<OpenVikingBroker> {
  const dir = await tempDir()
  const fake = createFakeOpenViking({ apiKey: 'ov-key' })
  const b = await startTurnBroker({
    db: databases()[0]!,
    transport,
    env: {
      CCBROKER_CLAUDE_BIN: await toolClaudeBin(dir.path),
      CCBROKER_WORKER_IDLE_MS: '0',
      CCBROKER_WORKSPACE_STORE: 'openviking',
      CCBROKER_OPENVIKING_URL: fake.url,
      CCBROKER_OPENVIKING_API_KEY: 'ov-key',
      CCBROKER_STORE_RETRY_MS: '1000',
    },
  }).catch(async (err) => {
    await fake.stop()
    await dir[Symbol.asyncDispose]()
    throw err
  })
  const prefix = (ws: string) => `viking://resources/workspace_${ws}/`
  return {
    b,
    fake,
    storeName: `openviking at ${fake.url}`,
    storedPaths: (ws) =>
      [...fake.files.keys()]
        .filter((k) => k.startsWith(prefix(ws)))
        .map((k) => k.slice(prefix(ws).length))
        .filter(
          (k) =>
            !/(^|\/)\.(abstract\.md|overview\.md|relations\.json|ccbroker-manifest\.json)$/.test(k),
        )
        .sort(),
    async [Symbol.asyncDispose]() {
      await b.stop()
      await fake.stop()
      await dir[Symbol.asyncDispose]()
    },
  }
}

// One test at a time: the store-down ones spend most of their time in the broker's backoff,
// and each test's broker starts its own PGlite.
describe.each(TRANSPORTS)('workspace sync around turns on %s with OpenViking', (transport) => {
  test('the round trip: turn two reads back the file turn one wrote', async () => {
    await using ov = await openVikingBroker(transport)
    const { b } = ov
    const sessionId = newSessionId()
    const ws = `ws-${sessionId}`
    const one = await runTurn(b, {
      session_id: sessionId,
      workspace_id: ws,
      user_message: 'write',
      metadata: tool('workspace_write', { path: 'src/main.py', content: 'print("hi")\n' }),
    })
    expect(stateOf(one)).toBe('done')
    const claudeId = await claudeSessionId(b, sessionId)
    const stored =
      transport === 'stdio'
        ? [`claude-home/${transcriptOf(sessionId, claudeId)}`, 'project/src/main.py']
        : ['project/src/main.py']
    expect(ov.storedPaths(ws)).toEqual(stored)
    const two = await runTurn(b, {
      session_id: sessionId,
      workspace_id: ws,
      user_message: 'read',
      metadata: tool('workspace_read', { path: 'src/main.py' }),
    })
    expect([stateOf(two), replyOf(two)]).toEqual(['done', 'print("hi")\n'])
    expect(payloadsOf(two, 'workspace_pulled')).toEqual([
      {
        type: 'workspace_pulled',
        workspace_id: ws,
        files: stored.length,
        bytes: expect.any(Number),
        ms: expect.any(Number),
        turn_id: payloadsOf(two, 'done')[0]!.turn_id,
      },
    ])
    const three = await runTurn(b, {
      session_id: sessionId,
      workspace_id: ws,
      user_message: 'and now?',
      metadata: { model: 'fake:echo' },
    })
    expect(replyOf(three)).toBe('echo: and now? (history: 2)')
  })

  test('store down during pull: the turn fails before any worker starts, naming the store and the reason', async () => {
    await using ov = await openVikingBroker(transport)
    const { b, fake, storeName } = ov
    const sessionId = newSessionId()
    const ws = `ws-${sessionId}`
    fake.failNext(1_000, { status: 503, code: 'UNAVAILABLE', path: downloadPath })
    const frames = await runTurn(b, { session_id: sessionId, workspace_id: ws, user_message: 'hi' })
    fake.clearFailures()
    const turnId = payloadsOf(frames, 'done')[0]!.turn_id
    // Retried within CCBROKER_STORE_RETRY_MS, then given up.
    const error = expect.stringMatching(
      new RegExp(
        `^could not pull workspace ${ws} from ${storeName}: ${storeName}: read ` +
          `\\.ccbroker-manifest\\.json in workspace ${ws} failed: HTTP 503 UNAVAILABLE: injected ` +
          'UNAVAILABLE \\(after \\d+ attempts\\)$',
      ),
    )
    expect(frames.map((f) => f.data.event_type)).toEqual(['user', 'turn_started', 'error', 'done'])
    expect([...payloadsOf(frames, 'error'), ...payloadsOf(frames, 'done')]).toEqual([
      { type: 'error', message: error, turn_id: turnId },
      { type: 'done', state: 'failed', error, result: null, turn_id: turnId },
    ])
    // No worker was spawned: the fake records every one it starts.
    expect(await readdir(b.recordDir)).toEqual(['.keep'])
    // The contrast: with the store back, the same session runs a worker.
    const again = await runTurn(b, { session_id: sessionId, workspace_id: ws, user_message: 'hi' })
    expect([stateOf(again), (await b.workers(sessionId)).length]).toEqual(['done', 1])
  })

  test('store down during push: the turn finishes, its changes are spooled, and the next turn sees them', async () => {
    await using ov = await openVikingBroker(transport)
    const { b, fake, storeName } = ov
    const sessionId = newSessionId()
    const ws = `ws-${sessionId}`
    fake.failNext(1_000, { status: 503, code: 'UNAVAILABLE', path: batchPath })
    const one = await runTurn(b, {
      session_id: sessionId,
      workspace_id: ws,
      user_message: 'write',
      metadata: tool('workspace_write', { path: 'data/result.csv', content: 'a,b\n1,2\n' }),
    })
    fake.clearFailures()
    expect(stateOf(one)).toBe('done')
    // Retried within the one budget (CCBROKER_STORE_RETRY_MS), not retried again on top.
    expect(fake.requests.filter((r) => r.path === batchPath).length).toBeGreaterThan(1)
    expect(payloadsOf(one, 'workspace_push_failed')).toEqual([
      {
        type: 'workspace_push_failed',
        workspace_id: ws,
        error: expect.stringMatching(
          new RegExp(
            `^could not push to ${storeName}: ${storeName}: batch-write .* in workspace ${ws} ` +
              'failed: HTTP 503 UNAVAILABLE: injected UNAVAILABLE \\(after \\d+ attempts\\)$',
          ),
        ),
        spooled: true,
        turn_id: payloadsOf(one, 'done')[0]!.turn_id,
      },
    ])
    expect(payloadsOf(one, 'workspace_pushed')).toEqual([])
    expect(ov.storedPaths(ws)).toEqual([])
    const spool = join(b.dataDir, 'spool', ws)
    expect((await readdir(spool)).length).toBe(1)

    const two = await runTurn(b, {
      session_id: sessionId,
      workspace_id: ws,
      user_message: 'read',
      metadata: tool('workspace_read', { path: 'data/result.csv' }),
    })
    expect([stateOf(two), replyOf(two)]).toEqual(['done', 'a,b\n1,2\n'])
    expect(await readdir(spool)).toEqual([])
    expect(ov.storedPaths(ws)).toContain('project/data/result.csv')
  })
})
