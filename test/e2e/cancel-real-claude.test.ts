import { describe, expect, test } from 'bun:test'
import { startFakeAnthropic } from '../../src/testing/fakes/anthropic.ts'
import { startTestBroker } from '../../src/testing/test-broker.ts'
import { claudeBin } from '../helpers/claude-bin.ts'
import { until } from '../helpers/until.ts'

for (const transport of ['ccr', 'stdio'] as const) {
  const bin = claudeBin(transport)
  describe.skipIf(!bin)(`cancelling real Claude Code over ${transport}`, () => {
    test('mid-answer: the worker acknowledges the interrupt and the turn ends cancelled long before the stop grace', async () => {
      await using model = startFakeAnthropic()
      const held = Promise.withResolvers<void>()
      model.script({ text: 'This answer never finishes.', hold: held.promise })
      await using b = await startTestBroker({
        transport,
        // A grace far above what a cancel may take: only an acknowledged interrupt ends in time.
        config: { CCBROKER_STOP_GRACE_MS: '20000' },
        worker: {
          claude: bin!,
          env: { ANTHROPIC_BASE_URL: model.url, ANTHROPIC_API_KEY: 'sk-ant-test-cancel' },
        },
      })
      const { turnId } = await b.client.enqueueTurn({
        sessionId: `cancel-${transport}`,
        workspaceId: 'ws-cancel',
        message: 'Write something long.',
      })
      // The model's answer has started: the worker is mid-turn.
      await until(() => model.messageRequests().some((r) => (r.body?.tools?.length ?? 0) > 0), {
        deadlineMs: 30_000,
      })
      const cancelledAt = Date.now()
      await b.client.cancelTurn(turnId)
      const events = []
      for await (const e of b.client.turnEvents(turnId)) events.push(e)
      const done = events.at(-1)!
      expect(done.payload).toMatchObject({ type: 'done', state: 'cancelled' })
      expect(Date.now() - cancelledAt).toBeLessThan(10_000)
      held.resolve()
    })

    test('right after it is queued: the turn is cancelled, not run to its end', async () => {
      await using model = startFakeAnthropic({ reply: 'Should not be needed.' })
      await using b = await startTestBroker({
        transport,
        config: { CCBROKER_STOP_GRACE_MS: '20000' },
        worker: {
          claude: bin!,
          env: { ANTHROPIC_BASE_URL: model.url, ANTHROPIC_API_KEY: 'sk-ant-test-cancel' },
        },
      })
      const { turnId } = await b.client.enqueueTurn({
        sessionId: `early-${transport}`,
        workspaceId: 'ws-cancel',
        message: 'Never mind.',
      })
      await until(async () => (await b.client.getTurn(turnId)).state === 'running')
      await b.client.cancelTurn(turnId)
      const events = []
      for await (const e of b.client.turnEvents(turnId)) events.push(e)
      expect(events.at(-1)!.payload).toMatchObject({ type: 'done', state: 'cancelled' })
      expect(
        events.some((e) => e.event_type === 'result' && (e.payload as any).subtype === 'success'),
      ).toBe(false)
    })
  })
}
