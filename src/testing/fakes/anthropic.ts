// A fake Anthropic Messages API for running real Claude Code offline. It records every request
// and answers POST /v1/messages from a queue of scripted replies, else with a default text.

export type RecordedRequest = {
  method: string
  path: string
  query: Record<string, string>
  headers: Record<string, string>
  /** Parsed JSON body; the raw text when it isn't JSON; null when empty. */
  body: any
}

export type ToolUse = { name: string; input: Record<string, unknown>; id?: string }

export type FailSpec = {
  /** Default 529 (overloaded_error). */
  status?: number
  type?: string
  message?: string
  /** Sent as `x-should-retry`; `false` makes 2.1.332 give up at once (2.1.120 retries anyway). */
  shouldRetry?: boolean
}

/** `hold`: the stream sends message_start, then waits for it (or the client's abort). */
export type FakeReply =
  | string
  | { text: string; hold?: Promise<unknown> }
  | { toolUse: ToolUse; text?: string; hold?: Promise<unknown> }
  | { error: FailSpec }

export type ScriptedReply = FakeReply | ((request: RecordedRequest) => FakeReply)

export type FakeAnthropicOptions = {
  /**
   * The model's answer to an agent-loop request nothing is scripted for: a text, or a function
   * of the last user message's text (and the request). Default `Hello from the fake model.`
   */
  reply?: string | ((prompt: string, request: RecordedRequest) => FakeReply)
  /** The same as a string `reply`. */
  text?: string
  /** Model name in replies when the request names none. */
  model?: string
}

export type FakeAnthropic = {
  url: string
  requests: RecordedRequest[]
  /** Only the POST /v1/messages requests, in order. */
  messageRequests(): RecordedRequest[]
  /** Queues replies for the next agent-loop /v1/messages requests (those offering tools). */
  script(...replies: ScriptedReply[]): void
  /** Scripted replies not yet used. */
  pendingReplies(): number
  /** The next `count` /v1/messages requests of any kind fail with `spec`. */
  fail(count: number, spec?: FailSpec): void
  stop(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

type Block =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> }

type Message = {
  id: string
  type: 'message'
  role: 'assistant'
  model: string
  content: Block[]
  stop_reason: 'end_turn' | 'tool_use'
  stop_sequence: null
  usage: { input_tokens: number; output_tokens: number }
}

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  429: 'rate_limit_error',
  500: 'api_error',
  529: 'overloaded_error',
}

// The agent loop always offers tools; side calls (2.1.120's session title, made unless
// CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1) offer none, so they never take a scripted reply.
const isMainLoop = (request: RecordedRequest) => (request.body?.tools?.length ?? 0) > 0

// The title call asks for JSON via output_config.format; plain text there would not parse.
const sideReply = (request: RecordedRequest): FakeReply | undefined =>
  request.body?.output_config?.format?.schema?.properties?.title
    ? JSON.stringify({ title: 'Fake session title' })
    : undefined

/** The last tool_result in the request's last user message, if it carries one. */
export function lastToolResult(
  request: RecordedRequest,
): { toolUseId: string; text: string; isError: boolean } | undefined {
  // 2.1.332 may append a role:'system' message after the user turn, so look for the last user one.
  const messages: any[] = request.body?.messages ?? []
  const last = messages.findLast((m) => m?.role === 'user')
  if (!Array.isArray(last?.content)) return undefined
  const result = last.content.findLast((b: any) => b?.type === 'tool_result')
  if (!result) return undefined
  const content = result.content
  const text =
    typeof content === 'string'
      ? content
      : (content ?? [])
          .filter((c: any) => c?.type === 'text')
          .map((c: any) => c.text)
          .join('\n')
  return { toolUseId: result.tool_use_id, text, isError: result.is_error === true }
}

const frame = (data: { type: string; [key: string]: unknown }) =>
  `event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`

// Text goes out in word-sized deltas and tool input in two halves, as the real API splits them.
function blockFrames(block: Block, index: number): string[] {
  const start = block.type === 'text' ? { type: 'text', text: '' } : { ...block, input: {} }
  const deltas =
    block.type === 'text'
      ? (block.text.match(/\S+\s*|\s+/g) ?? ['']).map((text) => ({ type: 'text_delta', text }))
      : halves(JSON.stringify(block.input)).map((partial_json) => ({
          type: 'input_json_delta',
          partial_json,
        }))
  return [
    frame({ type: 'content_block_start', index, content_block: start }),
    ...deltas.map((delta) => frame({ type: 'content_block_delta', index, delta })),
    frame({ type: 'content_block_stop', index }),
  ]
}

const halves = (s: string) => {
  const mid = Math.ceil(s.length / 2)
  return [s.slice(0, mid), s.slice(mid)]
}

function sseStream(message: Message, hold: Promise<unknown> | undefined, signal: AbortSignal) {
  const usage = { ...message.usage, output_tokens: 1 }
  const started = { ...message, content: [], stop_reason: null, usage }
  const head = frame({ type: 'message_start', message: started }) + frame({ type: 'ping' })
  const rest = [
    ...message.content.flatMap((block, index) => blockFrames(block, index)),
    frame({
      type: 'message_delta',
      delta: { stop_reason: message.stop_reason, stop_sequence: null },
      usage: { output_tokens: message.usage.output_tokens },
    }),
    frame({ type: 'message_stop' }),
  ].join('')
  const encoder = new TextEncoder()
  return new ReadableStream<Uint8Array>({
    async start(controller) {
      controller.enqueue(encoder.encode(head))
      if (hold) await Promise.race([hold, new Promise((r) => signal.addEventListener('abort', r))])
      // The client may have gone (an interrupt aborts the request): nothing left to send.
      if (signal.aborted) return
      controller.enqueue(encoder.encode(rest))
      controller.close()
    },
  })
}

/** The text of the request's last user message (its text blocks; tool results left out). */
export function lastPrompt(request: RecordedRequest): string {
  const messages: any[] = request.body?.messages ?? []
  const content = messages.findLast((m) => m?.role === 'user')?.content
  if (typeof content === 'string') return content
  return (Array.isArray(content) ? content : [])
    .filter((b: any) => b?.type === 'text' && typeof b.text === 'string')
    .map((b: any) => b.text)
    .join('\n')
}

/**
 * A fake Anthropic Messages API on a loopback port, for real Claude Code offline: point the CLI's
 * ANTHROPIC_BASE_URL at `url`. Answers streamed and plain requests as the real API shapes them.
 */
export function startFakeAnthropic(opts: FakeAnthropicOptions = {}): FakeAnthropic {
  const defaultText = opts.text ?? 'Hello from the fake model.'
  const fallback = (request: RecordedRequest): FakeReply => {
    const reply = opts.reply
    if (typeof reply === 'function') return reply(lastPrompt(request), request)
    return reply ?? defaultText
  }
  const requests: RecordedRequest[] = []
  const queue: ScriptedReply[] = []
  const failures: { left: number; spec: FailSpec } = { left: 0, spec: {} }
  const ids = { message: 0, tool: 0 }
  const requestId = () => ({ 'request-id': `req_fake_${requests.length}` })

  const errorResponse = (spec: FailSpec) => {
    const status = spec.status ?? 529
    const type = spec.type ?? ERROR_TYPES[status] ?? 'api_error'
    const headers: Record<string, string> = requestId()
    if (spec.shouldRetry !== undefined) headers['x-should-retry'] = String(spec.shouldRetry)
    const error = { type, message: spec.message ?? `fake ${type}` }
    return Response.json({ type: 'error', error }, { status, headers })
  }

  const messageOf = (model: string, reply: Exclude<FakeReply, string | { error: FailSpec }>) => {
    const content: Block[] = []
    if (reply.text !== undefined) content.push({ type: 'text', text: reply.text })
    if ('toolUse' in reply) {
      const { name, input, id = `toolu_fake_${++ids.tool}` } = reply.toolUse
      content.push({ type: 'tool_use', id, name, input })
    }
    const outputTokens = Math.ceil(JSON.stringify(content).length / 4)
    const message: Message = {
      id: `msg_fake_${++ids.message}`,
      type: 'message',
      role: 'assistant',
      model,
      content,
      stop_reason: 'toolUse' in reply ? 'tool_use' : 'end_turn',
      stop_sequence: null,
      usage: { input_tokens: 10, output_tokens: outputTokens },
    }
    return message
  }

  const answerMessages = (request: RecordedRequest, signal: AbortSignal) => {
    if (failures.left > 0) {
      failures.left--
      return errorResponse(failures.spec)
    }
    const mainLoop = isMainLoop(request)
    const next = mainLoop ? queue.shift() : undefined
    const reply =
      (typeof next === 'function' ? next(request) : next) ??
      sideReply(request) ??
      (mainLoop ? fallback(request) : defaultText)
    const shaped = typeof reply === 'string' ? { text: reply } : reply
    if ('error' in shaped) return errorResponse(shaped.error)
    const message = messageOf(request.body?.model ?? opts.model ?? 'claude-sonnet-4-6', shaped)
    if (request.body?.stream !== true) return Response.json(message, { headers: requestId() })
    return new Response(sseStream(message, shaped.hold, signal), {
      headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...requestId() },
    })
  }

  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    // A held reply keeps its stream open for as long as the test wants.
    idleTimeout: 0,
    async fetch(req) {
      const url = new URL(req.url)
      const text = await req.text()
      let body: unknown = null
      if (text) {
        try {
          body = JSON.parse(text)
        } catch {
          body = text
        }
      }
      const request: RecordedRequest = {
        method: req.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: Object.fromEntries(req.headers),
        body,
      }
      requests.push(request)

      // 2.1.120 checks connectivity with HEAD / (any status is fine); 2.1.332 does not.
      if (url.pathname === '/' && (req.method === 'HEAD' || req.method === 'GET'))
        return new Response(null, { status: 200 })
      if (req.method === 'POST' && url.pathname === '/v1/messages')
        return answerMessages(request, req.signal)
      if (req.method === 'POST' && url.pathname === '/v1/messages/count_tokens') {
        const size = JSON.stringify(request.body?.messages ?? []).length
        return Response.json({ input_tokens: Math.max(1, Math.ceil(size / 4)) })
      }
      const error = { type: 'not_found_error', message: `no route ${req.method} ${url.pathname}` }
      return Response.json({ type: 'error', error }, { status: 404, headers: requestId() })
    },
  })

  const stop = () => server.stop(true)
  return {
    url: `http://127.0.0.1:${server.port}`,
    requests,
    messageRequests: () => requests.filter((r) => r.method === 'POST' && r.path === '/v1/messages'),
    script: (...replies) => void queue.push(...replies),
    pendingReplies: () => queue.length,
    fail: (count, spec = {}) => {
      failures.left = count
      failures.spec = spec
    },
    stop,
    [Symbol.asyncDispose]: stop,
  }
}
