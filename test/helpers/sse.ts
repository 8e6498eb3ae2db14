export interface SseFrame {
  event: string | null
  id: string | null
  data: any
  /** The frame exactly as received, for wire-format assertions. */
  raw: string
}

export interface SseClient extends AsyncDisposable {
  status: number
  headers: Headers
  /** Next data frame (comments skipped); null when the stream ended. */
  next(): Promise<SseFrame | null>
  /** Collects `n` frames. */
  take(n: number): Promise<SseFrame[]>
  comments: string[]
  /** Everything received so far. */
  text(): string
  close(): void
}

/**
 * A minimal SSE reader over fetch (a GET, or `init`'s method and body): frames split on a blank
 * line, exactly as Claude Code does.
 */
export async function openSse(
  url: string,
  headers: Record<string, string> = {},
  init: { method?: string; body?: string } = {},
): Promise<SseClient> {
  const ac = new AbortController()
  const res = await fetch(url, {
    ...init,
    headers: { accept: 'text/event-stream', ...headers },
    signal: ac.signal,
  })
  // A 204 (a finished turn past its cursor) has no body: the stream has ended.
  const reader = res.body?.getReader() ?? null
  const decoder = new TextDecoder()
  let buffer = ''
  let all = ''
  let ended = false
  const comments: string[] = []
  const pending: SseFrame[] = []

  const parse = () => {
    let i: number
    while ((i = buffer.indexOf('\n\n')) >= 0) {
      const raw = buffer.slice(0, i + 2)
      buffer = buffer.slice(i + 2)
      let event: string | null = null
      let id: string | null = null
      const data: string[] = []
      for (const line of raw.split('\n')) {
        if (line === '') continue
        if (line.startsWith(':')) {
          comments.push(line.slice(1).trim())
          continue
        }
        const colon = line.indexOf(':')
        const field = colon < 0 ? line : line.slice(0, colon)
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
        if (field === 'event') event = value
        else if (field === 'id') id = value
        else if (field === 'data') data.push(value)
      }
      if (data.length === 0) continue
      const text = data.join('\n')
      let parsed: unknown = text
      try {
        parsed = JSON.parse(text)
      } catch {
        // Non-JSON data stays a string.
      }
      pending.push({ event, id, data: parsed, raw })
    }
  }

  const client: SseClient = {
    status: res.status,
    headers: res.headers,
    comments,
    text: () => all,
    async next() {
      for (;;) {
        const frame = pending.shift()
        if (frame) return frame
        if (ended || !reader) return null
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }))
        if (done) {
          ended = true
          continue
        }
        const chunk = decoder.decode(value, { stream: true })
        all += chunk
        buffer += chunk
        parse()
      }
    },
    async take(n) {
      const out: SseFrame[] = []
      while (out.length < n) {
        const f = await client.next()
        if (!f) throw new Error(`stream ended after ${out.length} of ${n} frames`)
        out.push(f)
      }
      return out
    },
    close: () => ac.abort(),
    [Symbol.asyncDispose]: async () => ac.abort(),
  }
  return client
}
