import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { databases } from '../helpers/databases.ts'
import { openSse, type SseFrame } from '../helpers/sse.ts'
import {
  newSessionId,
  readAll,
  startTurnBroker,
  TRANSPORTS,
  type TurnBroker,
} from '../helpers/turns.ts'

const REPLY = 'Streaming is when words arrive one by one.'

/** The text deltas of the stream_event frames, in order. */
const deltas = (frames: SseFrame[]) =>
  frames
    .filter((f) => f.data.event_type === 'stream_event')
    .map((f) => f.data.payload.event)
    .filter((e) => e.type === 'content_block_delta')
    .map((e) => e.delta.text as string)

describe.each(TRANSPORTS)('partial messages on %s', (transport) => {
  let b: TurnBroker
  beforeAll(async () => {
    b = await startTurnBroker({ db: databases()[0]!, transport })
  })
  afterAll(() => b.stop())

  /** A turn that replies REPLY, with a listener on the session's stream from before it runs. */
  async function streamedTurn(metadata: Record<string, unknown> = {}) {
    const sessionId = newSessionId('stream')
    const held = b.control.hold(sessionId)
    const { turn_id: turnId } = await b.enqueue({
      session_id: sessionId,
      workspace_id: 'ws-stream',
      user_message: 'stream it',
      metadata,
    })
    await held.arrived
    // Open (subscribed) before the worker writes: fragments are only ever live.
    await using live = await openSse(`${b.url}/api/turns/${turnId}/events`)
    held.release({ reply: REPLY })
    return { sessionId, turnId, frames: await readAll(live) }
  }

  test('live listeners get the text as it is written, each delta the whole text so far', async () => {
    const { frames } = await streamedTurn()
    const words = REPLY.match(/\S+\s*/g)!
    expect(deltas(frames)).toEqual(words.map((_, i) => words.slice(0, i + 1).join('')))
    const partial = frames.filter((f) => f.data.event_type === 'stream_event')
    expect(partial.every((f) => f.data.ephemeral === true)).toBe(true)
    // Then the whole message, once.
    const assistant = frames.filter((f) => f.data.event_type === 'assistant')
    expect(assistant.map((f) => f.data.payload.message.content[0].text)).toEqual([REPLY])
    expect(frames.indexOf(assistant[0]!)).toBeGreaterThan(frames.indexOf(partial.at(-1)!))
  })

  test('a replay from a cursor shows whole messages, not fragments', async () => {
    const { sessionId, turnId, frames } = await streamedTurn()
    expect(deltas(frames).length).toBeGreaterThan(0)
    const listed = await b.api('GET', `/v1/sessions/${sessionId}/events?limit=1000`)
    expect(listed.body.data.map((e: any) => e.event_type)).not.toContain('stream_event')
    await using replay = await openSse(`${b.url}/v1/sessions/${sessionId}/events/stream?since=0`)
    const replayed = await replay.take(listed.body.data.length)
    expect(replayed.map((f) => f.data.event_id)).toEqual(
      listed.body.data.map((e: any) => e.event_id),
    )
    const again = await b.follow(turnId, {}, '?since=0')
    expect(again.map((f) => f.data.event_type)).not.toContain('stream_event')
    expect(again.at(-1)!.data.event_type).toBe('done')
  })

  test('metadata partial_messages: false asks for whole messages only', async () => {
    const { frames } = await streamedTurn({ partial_messages: false })
    expect(frames.map((f) => f.data.event_type)).not.toContain('stream_event')
    expect(frames.some((f) => f.data.event_type === 'assistant')).toBe(true)
  })
})
