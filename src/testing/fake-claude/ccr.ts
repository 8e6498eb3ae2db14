// CCR v2 "session ingress" (src/worker/PROTOCOL.md): state, events, delivery and transcript go to
// the broker over HTTP; client events come from its SSE stream.
import type { Engine } from './engine.ts'
import type { Io } from './io.ts'
import { die, isObj, say, VERSION, type Json, type Options } from './options.ts'

export async function runCcr(o: Options, engine: Engine, base: string): Promise<void> {
  const epochRaw = o.env.CLAUDE_CODE_WORKER_EPOCH
  if (!epochRaw || !/^\d+$/.test(epochRaw))
    return die(1, 'fake-claude: CLAUDE_CODE_WORKER_EPOCH is not set (missing_epoch)')
  const epoch = Number(epochRaw)
  const headers = (extra: Record<string, string> = {}) => ({
    authorization: `Bearer ${o.env.CLAUDE_CODE_SESSION_ACCESS_TOKEN ?? ''}`,
    'anthropic-version': '2023-06-01',
    'user-agent': `claude-code/${VERSION} (fake)`,
    ...extra,
  })
  let authFailures = 0
  const request = async (method: string, path: string, body?: Json, timeoutMs = 10_000) => {
    const res = await fetch(base + path, {
      method,
      headers: headers(body ? { 'content-type': 'application/json' } : {}),
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(timeoutMs),
    })
    if (res.status === 409) die(1, `fake-claude: 409 on ${method} ${path}, exiting`)
    if (res.status === 401 || res.status === 403) {
      if (++authFailures >= 10)
        die(1, `fake-claude: 10 consecutive auth failures (${res.status}), exiting`)
    } else if (res.ok) authFailures = 0
    return res
  }
  // Writes are retried until 2xx (0.5 s·2ⁿ, max 30 s; 429 honours Retry-After) and sent one
  // at a time in order: events, delivery, state and transcript share one queue here.
  const write = async (method: string, path: string, body: Json) => {
    for (let attempt = 1; ; attempt++) {
      let waitMs = Math.min(500 * 2 ** (attempt - 1), 30_000) + Math.random() * 500
      try {
        const res = await request(method, path, body)
        const text = await res.text()
        if (res.ok) return
        if (res.status === 429) waitMs = Number(res.headers.get('retry-after') ?? 1) * 1000
        say(`fake-claude: ${method} ${path} → ${res.status} ${text.slice(0, 200)}; retrying`)
      } catch (err) {
        say(`fake-claude: ${method} ${path} failed: ${(err as Error).message}; retrying`)
      }
      await Bun.sleep(waitMs)
    }
  }
  let writes: Promise<void> = Promise.resolve()
  const queueWrite = (method: string, path: string, body: Json) =>
    (writes = writes.then(() => write(method, path, { worker_epoch: epoch, ...body })))
  const io: Io = {
    emit: (payloads, ephemeral = false) =>
      queueWrite('POST', '/worker/events', {
        events: [payloads]
          .flat()
          .map((payload) => (ephemeral ? { payload, ephemeral } : { payload })),
      }),
    state: (patch) => queueWrite('PUT', '/worker', patch),
    delivery: (eventId, status) =>
      queueWrite('POST', '/worker/events/delivery', { updates: [{ event_id: eventId, status }] }),
    transcript: (entry) =>
      queueWrite('POST', '/worker/internal-events', { events: [{ payload: entry }] }),
    flush: () => writes,
  }
  engine.setIo(io)

  if (o.resumed) {
    // Rebuild the conversation from the broker's copy of the transcript, paging on next_cursor.
    const fetchAll = async (subagents: boolean) => {
      const out: Json[] = []
      let cursor: string | null = null
      do {
        const q = new URLSearchParams()
        if (subagents) q.set('subagents', 'true')
        if (cursor) q.set('cursor', cursor)
        const res = await request(
          'GET',
          `/worker/internal-events${q.size ? `?${q}` : ''}`,
          undefined,
          30_000,
        )
        if (!res.ok) die(1, `fake-claude: GET /worker/internal-events → ${res.status}`)
        const body = (await res.json()) as Json
        out.push(...(body.data ?? []))
        cursor = typeof body.next_cursor === 'string' ? body.next_cursor : null
      } while (cursor)
      return out
    }
    const foreground = await fetchAll(false)
    const subagents = await fetchAll(true)
    for (const e of foreground) if (isObj(e.payload)) engine.learn(e.payload)
    say(
      `fake-claude resumed ${o.sessionId}: ${foreground.length} foreground and ${subagents.length} subagent entries, ${engine.history()} user messages`,
    )
  }

  await request('GET', '/worker', undefined, 30_000)
    .then((r) => r.text())
    .catch(() => {})
  const registration = request('PUT', '/worker', {
    worker_status: 'idle',
    worker_epoch: epoch,
    external_metadata: { pending_action: null, task_summary: null },
  }).then(
    async (res) =>
      void (
        res.ok ||
        die(1, `fake-claude: registration PUT /worker → ${res.status} ${await res.text()}`)
      ),
    (err) => die(1, `fake-claude: registration PUT /worker failed: ${err.message}`),
  )
  writes = registration
  const heartbeatMs = Number(o.env.FAKE_CLAUDE_HEARTBEAT_MS ?? 20_000)
  const sessionSegment = base.split('/').at(-1)
  void registration.then(() =>
    setInterval(() => {
      request(
        'POST',
        '/worker/heartbeat',
        { session_id: sessionSegment, worker_epoch: epoch },
        5_000,
      )
        .then((r) => r.text())
        .catch(() => {}) // heartbeats are not retried
    }, heartbeatMs),
  )
  // The stream is opened without waiting for the registration's answer (as Claude Code does).
  await streamLoop(base, headers, engine, () => writes)
}

async function streamLoop(
  base: string,
  headers: (e?: Record<string, string>) => Record<string, string>,
  engine: Engine,
  flush: () => Promise<void>,
) {
  let cursor: number | null = null
  let attempt = 0
  let lastConnected = Date.now()
  for (;;) {
    const ac = new AbortController()
    let liveness: Timer | undefined
    // No byte (frame or comment) for 45 s → abort and reconnect.
    const arm = () => (clearTimeout(liveness), (liveness = setTimeout(() => ac.abort(), 45_000)))
    try {
      arm()
      const res = await fetch(
        `${base}/worker/events/stream${cursor !== null ? `?from_sequence_num=${cursor}` : ''}`,
        {
          headers: headers({
            accept: 'text/event-stream',
            ...(cursor !== null ? { 'last-event-id': String(cursor) } : {}),
          }),
          signal: ac.signal,
        },
      )
      if (res.status === 409) die(1, 'fake-claude: 409 on the event stream, exiting')
      if ([401, 403, 404].includes(res.status)) {
        say(`fake-claude: event stream → ${res.status}, input closed for good`)
        await flush()
        die(0)
      }
      if (res.ok && res.body) {
        attempt = 0
        lastConnected = Date.now()
        const decoder = new TextDecoder()
        let buffer = ''
        for await (const chunk of res.body) {
          arm()
          buffer += decoder.decode(chunk, { stream: true })
          // Frames end at a blank line, LF only: a CRLF frame never ends, as in Claude Code.
          let i: number
          while ((i = buffer.indexOf('\n\n')) >= 0) {
            const id = onFrame(engine, buffer.slice(0, i))
            buffer = buffer.slice(i + 2)
            if (id !== null) cursor = Math.max(cursor ?? 0, id)
          }
        }
        say('fake-claude: event stream ended, reconnecting')
      } else say(`fake-claude: event stream → ${res.status} ${await res.text()}`)
    } catch (err) {
      say(`fake-claude: event stream failed: ${(err as Error).message}`)
    } finally {
      clearTimeout(liveness)
      ac.abort()
    }
    if (Date.now() - lastConnected > 10 * 60_000) {
      await flush()
      die(0, 'fake-claude: no event stream for 10 minutes, giving up')
    }
    attempt++
    await Bun.sleep(Math.min(1000 * 2 ** (attempt - 1), 30_000) * (0.75 + Math.random() * 0.5))
  }
}

/** Dispatches one SSE frame; answers its `id:` when it was a client_event, else null. */
function onFrame(engine: Engine, frame: string): number | null {
  let event: string | null = null
  let id: number | null = null
  const data: string[] = []
  for (const line of frame.split('\n')) {
    if (line.startsWith(':')) continue
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
    if (field === 'event') event = value
    else if (field === 'id' && /^\d+$/.test(value)) id = Number(value)
    else if (field === 'data') data.push(value)
  }
  if (event !== 'client_event' || data.length === 0) return null
  let envelope: unknown
  try {
    envelope = JSON.parse(data.join('\n'))
  } catch {
    say(`fake-claude: unparsable client_event data: ${data.join('\n').slice(0, 200)}`)
    return id
  }
  if (!isObj(envelope) || !isObj(envelope.payload) || typeof envelope.payload.type !== 'string')
    return id
  if (typeof envelope.event_id === 'string') void engine.delivery(envelope.event_id, 'received')
  engine.handleInput(envelope.payload)
  return id
}
