/**
 * Rewrites a stdio worker's partial-message deltas so each carries its block's whole text so
 * far, as CCR v2 workers send them: a listener that joins mid-message (or reads one frame of
 * many) sees the message as it stands, not a fragment it never saw the start of.
 */
export function createCumulativeDeltas() {
  // Text so far of each content block of the message being streamed, by block index.
  let blocks = new Map<number, string>()
  return (payload: Record<string, unknown>): Record<string, unknown> => {
    if (payload.type !== 'stream_event') return payload
    const event = payload.event as Record<string, any> | undefined
    if (event?.type === 'message_start') blocks = new Map()
    if (event?.type !== 'content_block_delta') return payload
    const delta = event.delta as Record<string, unknown> | undefined
    const field =
      delta?.type === 'text_delta' ? 'text' : delta?.type === 'thinking_delta' ? 'thinking' : null
    if (!field || typeof delta![field] !== 'string') return payload
    const index = Number(event.index ?? 0)
    const text = (blocks.get(index) ?? '') + (delta![field] as string)
    blocks.set(index, text)
    return { ...payload, event: { ...event, delta: { ...delta, [field]: text } } }
  }
}
