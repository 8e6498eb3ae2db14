import { describe, expect, test } from 'bun:test'
import type { BrokerEvent } from '../../src/client/index.ts'
import { startFakeAnthropic } from '../../src/testing/fakes/anthropic.ts'
import { startTestBroker } from '../../src/testing/test-broker.ts'
import { claudeBin } from '../helpers/claude-bin.ts'
import { until } from '../helpers/until.ts'

const types = (events: BrokerEvent[]) => events.map((e) => e.event_type)

/** The value of an unlabelled gauge in the broker's /metrics text. */
async function gauge(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return Number(line?.split(' ')[1])
}

for (const transport of ['ccr', 'stdio'] as const) {
  const bin = claudeBin(transport)
  describe.skipIf(!bin)(`warm workers with real Claude Code over ${transport}`, () => {
    test('follow-up turns go to the live process, which pulls nothing and carries the conversation', async () => {
      await using model = startFakeAnthropic({ reply: (prompt) => `Noted: ${prompt}` })
      await using b = await startTestBroker({
        transport,
        config: { CCBROKER_WORKER_IDLE_MS: '600000', CCBROKER_STOP_GRACE_MS: '20000' },
        worker: {
          claude: bin!,
          env: { ANTHROPIC_BASE_URL: model.url, ANTHROPIC_API_KEY: 'sk-ant-test-warm' },
        },
      })
      const turn = (message: string) =>
        b.client.runTurn({ sessionId: `warm-${transport}`, workspaceId: 'ws-warm', message })
      const requestsText = () => JSON.stringify(model.messageRequests().at(-1)!.body)

      const one = await turn('The code word is heron.')
      expect(one.state).toBe('done')
      expect(types(one.events)).toContain('workspace_pulled')
      expect(await gauge(b.url, 'ccbroker_workers_idle')).toBe(1)

      const two = await turn('What is the code word?')
      expect(two.state).toBe('done')
      expect(two.text).toBe('Noted: What is the code word?')
      // The same process: it pulled nothing, and the model saw turn one.
      expect(types(two.events)).not.toContain('workspace_pulled')
      expect(types(two.events)).toContain('workspace_pushed')
      expect(requestsText()).toContain('The code word is heron.')
      expect(two.events.every((e) => e.turn_id === two.turnId)).toBe(true)
    })

    test('an idle worker is gone after its idle time, and the next turn resumes the conversation', async () => {
      await using model = startFakeAnthropic({ reply: (prompt) => `Noted: ${prompt}` })
      await using b = await startTestBroker({
        transport,
        config: { CCBROKER_WORKER_IDLE_MS: '1000' },
        worker: {
          claude: bin!,
          env: { ANTHROPIC_BASE_URL: model.url, ANTHROPIC_API_KEY: 'sk-ant-test-warm' },
        },
      })
      const turn = (message: string) =>
        b.client.runTurn({ sessionId: `idle-${transport}`, workspaceId: 'ws-idle', message })
      expect((await turn('The code word is plover.')).state).toBe('done')
      await until(async () => (await gauge(b.url, 'ccbroker_workers_idle')) === 0, {
        deadlineMs: 30_000,
        what: 'the idle worker to stop',
      })
      const two = await turn('What is the code word?')
      expect(two.state).toBe('done')
      expect(types(two.events)).toContain('workspace_pulled')
      expect(JSON.stringify(model.messageRequests().at(-1)!.body)).toContain(
        'The code word is plover.',
      )
    })

    test('a cancelled warm turn ends quickly and its process goes on with the next turn', async () => {
      await using model = startFakeAnthropic({ reply: (prompt) => `Noted: ${prompt}` })
      await using b = await startTestBroker({
        transport,
        config: { CCBROKER_WORKER_IDLE_MS: '600000', CCBROKER_STOP_GRACE_MS: '20000' },
        worker: {
          claude: bin!,
          env: { ANTHROPIC_BASE_URL: model.url, ANTHROPIC_API_KEY: 'sk-ant-test-warm' },
        },
      })
      const sessionId = `cancel-warm-${transport}`
      const turn = (message: string) =>
        b.client.runTurn({ sessionId, workspaceId: 'ws-cw', message })
      expect((await turn('First.')).state).toBe('done')
      const held = Promise.withResolvers<void>()
      model.script({ text: 'This answer never finishes.', hold: held.promise })
      const before = model.messageRequests().length
      const { turnId } = await b.client.enqueueTurn({
        sessionId,
        workspaceId: 'ws-cw',
        message: 'Write something long.',
      })
      await until(() => model.messageRequests().length > before, { deadlineMs: 30_000 })
      const cancelledAt = Date.now()
      await b.client.cancelTurn(turnId)
      const events: BrokerEvent[] = []
      for await (const e of b.client.turnEvents(turnId)) events.push(e)
      expect(events.at(-1)!.payload).toMatchObject({ type: 'done', state: 'cancelled' })
      expect(Date.now() - cancelledAt).toBeLessThan(10_000)
      held.resolve()
      const three = await turn('Still there?')
      expect(three.state).toBe('done')
      expect(types(three.events)).not.toContain('workspace_pulled')
    })
  })
}
