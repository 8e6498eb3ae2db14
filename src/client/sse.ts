/** One server-sent event: its `id:`, `event:` and `data:` (joined), as the frame carried them. */
export interface SseFrame {
  id: string | null
  event: string | null
  data: string
}

/**
 * The frames of an SSE body, as they arrive. Comment lines (`: keepalive`) and `retry:` are
 * skipped; frames end at a blank line; CR LF and LF both end a line.
 */
export async function* readSse(
  body: ReadableStream<Uint8Array>,
  /** Called with a `retry:` field's milliseconds (the broker's reconnection hint). */
  onRetry?: (ms: number) => void,
): AsyncGenerator<SseFrame> {
  const decoder = new TextDecoder()
  let buffer = ''
  let frame: SseFrame = { id: null, event: null, data: '' }
  let hasData = false
  const lines = function* (final: boolean) {
    for (;;) {
      const at = buffer.search(/\r?\n/)
      if (at < 0) {
        if (final && buffer) {
          const rest = buffer
          buffer = ''
          yield rest
        }
        return
      }
      const line = buffer.slice(0, at)
      buffer = buffer.slice(buffer[at] === '\r' ? at + 2 : at + 1)
      yield line
    }
  }
  const take = function* (final: boolean) {
    for (const line of lines(final)) {
      if (line === '') {
        if (hasData) yield frame
        frame = { id: null, event: null, data: '' }
        hasData = false
        continue
      }
      if (line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const field = colon < 0 ? line : line.slice(0, colon)
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
      if (field === 'retry' && /^\d+$/.test(value)) onRetry?.(Number(value))
      else if (field === 'id') frame.id = value
      else if (field === 'event') frame.event = value
      else if (field === 'data') {
        frame.data = hasData ? `${frame.data}\n${value}` : value
        hasData = true
      }
    }
  }
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true })
    yield* take(false)
  }
  buffer += decoder.decode()
  yield* take(true)
}
