import { describe, expect, test } from 'bun:test'
import { BrokerApiError } from '../../src/client/errors.ts'
import type { BrokerEvent, PermissionRequest } from '../../src/client/events.ts'
import {
  startFakeAnthropic,
  startFakeImBridge,
  startTestBroker,
  type ScriptedTurn,
} from '../../src/testing/index.ts'
import { claudeBin } from '../helpers/claude-bin.ts'
import { until } from '../helpers/until.ts'

const types = (events: { event_type: string }[]) => events.map((e) => e.event_type)

describe('startTestBroker with the scripted worker', () => {
  test('out of the box: PGlite in a temp dir, a client, and a worker that echoes', async () => {
    let dataDir: string
    {
      await using b = await startTestBroker()
      dataDir = b.dataDir
      expect(b.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      const out = await b.client.runTurn({ sessionId: 's1', workspaceId: 'w', message: 'hello' })
      expect(out).toMatchObject({
        state: 'done',
        text: 'echo: hello',
        error: null,
        costUsd: 0.0123,
        usage: { input_tokens: 10, output_tokens: 5 },
      })
      expect(types(out.events)).toEqual([
        'user',
        'turn_started',
        'workspace_pulled',
        'system',
        'assistant',
        'result',
        'workspace_pushed',
        'done',
      ])
      expect(out.events.find((e) => e.event_type === 'system')?.payload).toMatchObject({
        subtype: 'init',
        model: expect.any(String),
      })
    }
    // Disposed: the broker is gone and so is everything it wrote.
    expect(await Bun.file(dataDir).exists()).toBe(false)
    expect(await Bun.file(`${dataDir}/pglite`).exists()).toBe(false)
  })

  test('a reply function sees each message and the conversation so far; listEvents reads it all back', async () => {
    const seen: { message: string; turn: Omit<ScriptedTurn, 'signal'> }[] = []
    await using b = await startTestBroker({
      worker: {
        reply: (message, { signal, ...turn }) => {
          seen.push({ message, turn })
          return message === 'two' ? 'second' : 'first'
        },
      },
    })
    const one = await b.client.runTurn({ sessionId: 's2', workspaceId: 'w', message: 'one' })
    const two = await b.client.runTurn({ sessionId: 's2', workspaceId: 'w', message: 'two' })
    expect([one.text, two.text]).toEqual(['first', 'second'])
    expect(seen).toEqual([
      { message: 'one', turn: { sessionId: 's2', turnId: one.turnId, history: 0 } },
      { message: 'two', turn: { sessionId: 's2', turnId: two.turnId, history: 1 } },
    ])
    const all = await b.client.listEvents('s2')
    expect(all.map((e) => e.event_id)).toEqual(
      [...one.events, ...two.events].map((e) => e.event_id),
    )
    expect(b.worker?.turns.map((t) => t.text)).toEqual(['one', 'two'])
  })

  test('a script: text, a tool call, partial text and a broker MCP tool, in order', async () => {
    await using b = await startTestBroker({
      worker: {
        reply: {
          steps: [
            { text: 'Looking.' },
            { tool: 'Read', input: { file_path: 'a.txt' }, output: 'contents of a' },
            { stream: 'Streaming this.' },
            { mcp: 'list_scheduled_tasks' },
          ],
          reply: 'All done.',
        },
      },
    })
    const events = []
    for await (const e of b.client.streamTurn({ sessionId: 's3', workspaceId: 'w', message: 'go' }))
      events.push(e)
    expect(events.at(-1)).toMatchObject({ event_type: 'done', payload: { state: 'done' } })
    const worker = events.filter((e) => e.source === 'worker' && e.event_type !== 'system')
    const shapes = worker.map((e) => {
      const p = e.payload as any
      if (p.type === 'stream_event') return `stream:${p.event.type}`
      const block = p.message?.content?.[0]
      return `${p.type}:${block?.type ?? ''}:${block?.text ?? block?.name ?? ''}`
    })
    expect(shapes).toEqual([
      'assistant:text:Looking.',
      'assistant:tool_use:Read',
      'user:tool_result:',
      'stream:message_start',
      'stream:content_block_start',
      'stream:content_block_delta',
      'stream:content_block_delta',
      'stream:content_block_stop',
      'stream:message_delta',
      'stream:message_stop',
      'assistant:text:Streaming this.',
      'assistant:tool_use:mcp__broker__list_scheduled_tasks',
      'user:tool_result:',
      'stream:message_start',
      'stream:content_block_start',
      'stream:content_block_delta',
      'stream:content_block_delta',
      'stream:content_block_stop',
      'stream:message_delta',
      'stream:message_stop',
      'assistant:text:All done.',
      'result::',
    ])
    // The MCP call was real: the broker's tool answered it.
    const mcpResult = worker[12]!.payload as any
    expect(mcpResult.message.content[0]).toMatchObject({ type: 'tool_result', is_error: false })
    expect(mcpResult.message.content[0].content).toEqual([{ type: 'text', text: '[]' }])
    expect(worker.filter((e) => e.ephemeral).length).toBe(14)
    // A replay keeps the finished messages, not the fragments.
    const kept = (await b.client.listEvents('s3')).filter(
      (e) => e.source === 'worker' && e.event_type !== 'system',
    )
    expect(kept.map((e) => e.event_id)).toEqual(
      worker.filter((e) => !e.ephemeral).map((e) => e.event_id),
    )
  })

  test('a permission step asks through the broker and goes on with the answer', async () => {
    await using b = await startTestBroker({
      config: { CCBROKER_PERMISSION_POLICY: 'ask' },
      worker: { reply: { steps: [{ permission: 'Bash', input: { command: 'rm -rf build' } }] } },
    })
    const events: BrokerEvent[] = []
    let request: PermissionRequest | null = null
    for await (const e of b.client.streamTurn({
      sessionId: 's4',
      workspaceId: 'w',
      message: 'clean',
    })) {
      events.push(e)
      if (e.event_type === 'permission_request') {
        request = e.payload as PermissionRequest
        await b.client.answerPermission('s4', request.request_id, {
          behavior: 'deny',
          message: 'not today',
        })
      }
    }
    expect(request).toMatchObject({ tool_name: 'Bash', input: { command: 'rm -rf build' } })
    expect(types(events)).toContain('permission_resolved')
    expect(events.at(-1)?.payload).toMatchObject({ type: 'done', state: 'done' })
    // The worker went on with the denial: its tool result is the error the answer gave.
    const result = events.find(
      (e) =>
        e.source === 'worker' && (e.payload as any).message?.content?.[0]?.type === 'tool_result',
    )
    expect((result?.payload as any).message.content[0]).toMatchObject({
      is_error: true,
      content: 'not today',
    })
  })

  test('fail and exit end the turn as failed, with the reason', async () => {
    await using b = await startTestBroker({
      worker: {
        reply: (message) => (message === 'fail' ? { fail: 'model overloaded' } : { exit: 3 }),
      },
    })
    const failed = await b.client.runTurn({ sessionId: 's5', workspaceId: 'w', message: 'fail' })
    expect(failed).toMatchObject({
      state: 'failed',
      error: expect.stringContaining('model overloaded'),
    })
    const crashed = await b.client.runTurn({ sessionId: 's6', workspaceId: 'w', message: 'exit' })
    expect(crashed).toMatchObject({ state: 'failed', error: expect.stringContaining('code 3') })
  })

  test('a reply that waits holds the turn until released; a cancel ends the wait', async () => {
    const release = Promise.withResolvers<string>()
    let aborted = false
    await using b = await startTestBroker({
      worker: {
        reply: (message, { signal }) => {
          if (message === 'later') return release.promise
          return new Promise((_, reject) =>
            signal.addEventListener('abort', () => {
              aborted = true
              reject(new Error('cancelled'))
            }),
          )
        },
      },
    })
    const held = b.client.runTurn({ sessionId: 's7', workspaceId: 'w', message: 'later' })
    // The worker has asked for its answer: the turn is running, and stays so until released.
    await until(() => b.worker!.turns.some((t) => t.session_id === 's7'))
    expect((await b.client.listTurns('s7')).data.map((t) => t.state)).toEqual(['running'])
    release.resolve('finally')
    expect((await held).text).toBe('finally')

    const stuck = await b.client.enqueueTurn({
      sessionId: 's8',
      workspaceId: 'w',
      message: 'forever',
    })
    await until(async () => (await b.client.getTurn(stuck.turnId)).state === 'running')
    await until(() => b.worker!.turns.some((t) => t.session_id === 's8'))
    await b.client.cancelTurn(stuck.turnId)
    const outcome = []
    for await (const e of b.client.turnEvents(stuck.turnId)) outcome.push(e)
    expect((outcome.at(-1)!.payload as any).state).toBe('cancelled')
    await until(() => aborted)
  })

  test('a hold step stops the worker mid-message until released; the release’s steps run there', async () => {
    await using b = await startTestBroker({
      worker: { reply: { steps: [{ stream: 'Half of it', hold: true }], reply: 'Whole.' } },
    })
    const pause = b.worker!.pause('s9')
    const events: BrokerEvent[] = []
    const run = (async () => {
      for await (const e of b.client.streamTurn({
        sessionId: 's9',
        workspaceId: 'w',
        message: 'go',
      }))
        events.push(e)
    })()
    await pause.arrived
    // Paused after the last delta: the partial text is out, the finished message is not.
    const lastDelta = () =>
      events.findLast((e) => (e.payload as any).event?.type === 'content_block_delta')
    await until(() => (lastDelta()?.payload as any)?.event.delta.text === 'Half of it', {
      what: 'the last partial frame',
    })
    expect(events.some((e) => e.event_type === 'assistant')).toBe(false)
    pause.release({ steps: [{ text: 'Said while held.' }] })
    await run
    const texts = events
      .filter((e) => e.event_type === 'assistant')
      .map((e) => (e.payload as any).message.content[0].text)
    expect(texts).toEqual(['Said while held.', 'Half of it', 'Whole.'])
    expect(events.at(-1)).toMatchObject({ event_type: 'done', payload: { state: 'done' } })
    // The hold step was not a turn of its own.
    expect(b.worker!.turns.map((t) => t.session_id)).toEqual(['s9'])
  })

  test('with CCBROKER_API_KEYS in config, the client carries the key and other callers are refused', async () => {
    await using b = await startTestBroker({
      config: { CCBROKER_API_KEYS: 'key-harness-0123456789' },
    })
    expect((await b.client.createSession({ workspaceId: 'w' })).workspace_id).toBe('w')
    expect((await fetch(`${b.url}/v1/sessions`)).status).toBe(401)
    const error = await b.client.getSession('nope').catch((e) => e)
    expect(error).toBeInstanceOf(BrokerApiError)
    expect(error).toMatchObject({ status: 404, message: expect.stringContaining('nope') })
  })

  test('the IM bridge fake records what a worker’s send_message sent', async () => {
    await using bridge = await startFakeImBridge({ secret: 'bridge-secret-0123456789' })
    await using b = await startTestBroker({
      config: {
        CCBROKER_IMBRIDGE_URL: bridge.url,
        CCBROKER_IMBRIDGE_SECRET: 'bridge-secret-0123456789',
      },
      worker: {
        reply: { steps: [{ mcp: 'send_message', args: { text: 'on it' } }], reply: 'sent' },
      },
    })
    const out = await b.client.runTurn({
      sessionId: 's9',
      workspaceId: 'w',
      message: 'ping me',
      imChannelId: 'chan-1',
      imUserId: 'user-1',
    })
    expect(out.state).toBe('done')
    expect(bridge.sent).toEqual([
      {
        path: '/api/internal/imbridge/send',
        body: expect.objectContaining({
          channel_id: 'chan-1',
          to_user_id: 'user-1',
          text: 'on it',
        }),
      },
    ])
  })
})

const real = claudeBin('stdio')
describe.skipIf(!real)('startTestBroker with real Claude Code and startFakeAnthropic', () => {
  test('the model’s reply comes back as the turn’s text, offline', async () => {
    await using model = startFakeAnthropic({ reply: (prompt) => `The model read: ${prompt}` })
    await using b = await startTestBroker({
      worker: {
        claude: real!,
        env: { ANTHROPIC_BASE_URL: model.url, ANTHROPIC_API_KEY: 'sk-ant-test-harness' },
      },
    })
    const out = await b.client.runTurn({
      sessionId: 'real-1',
      workspaceId: 'w',
      message: 'Say hi.',
    })
    expect(out).toMatchObject({ state: 'done', text: 'The model read: Say hi.' })
    expect(model.messageRequests().length).toBeGreaterThan(0)
  })
})
