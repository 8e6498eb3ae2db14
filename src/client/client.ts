import { assistantText, type BrokerEvent, type Done, type Usage } from './events.ts'
import { apiError, BrokerApiError } from './errors.ts'
import type { Page, Session, Turn, TurnInput } from './resources.ts'
import { readSse } from './sse.ts'

export interface ClientOptions {
  /** The broker's base URL, e.g. `http://127.0.0.1:8085`. */
  url: string
  /** An API key, when the broker has `CCBROKER_API_KEYS`. */
  apiKey?: string
  fetch?: (input: string | URL | Request, init?: RequestInit) => Promise<Response>
  /** Pause before a dropped stream reconnects, unless the broker's `retry:` says otherwise. */
  reconnectMs?: number
}

/** What `runTurn` answers once the turn's `done` event came. */
export interface TurnOutcome {
  turnId: string
  state: Done['state']
  /** The assistant's final text. */
  text: string
  error: string | null
  result: Done['result']
  costUsd: number | null
  usage: Usage | null
  /** Every event of the turn, in order. */
  events: BrokerEvent[]
}

const isDone = (e: BrokerEvent) => e.source === 'broker' && e.event_type === 'done'

/** A typed client of a broker's external API. */
export function createClient(opts: ClientOptions) {
  const base = opts.url.replace(/\/+$/, '')
  const doFetch = opts.fetch ?? fetch
  const reconnectMs = opts.reconnectMs ?? 1000
  const auth = (): Record<string, string> =>
    opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}

  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await doFetch(base + path, {
      method,
      headers: {
        ...auth(),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    if (!res.ok) throw await apiError(res, `${method} ${path}`)
    return (await res.json()) as T
  }

  const turnBody = (t: TurnInput) => ({
    session_id: t.sessionId,
    workspace_id: t.workspaceId,
    user_message: t.message,
    ...(t.metadata ? { metadata: t.metadata } : {}),
    ...(t.imChannelId ? { im_channel_id: t.imChannelId } : {}),
    ...(t.imUserId ? { im_user_id: t.imUserId } : {}),
  })

  /** The events of one SSE response, with the cursor and retry hint it moves on. */
  async function* eventsOf(res: Response, seen: { cursor: number | null; retryMs: number }) {
    for await (const frame of readSse(res.body!, (ms) => (seen.retryMs = ms))) {
      const event = JSON.parse(frame.data) as BrokerEvent
      if (seen.cursor !== null && event.sequence_num <= seen.cursor) continue
      seen.cursor = event.sequence_num
      yield event
    }
  }

  /**
   * Follows an SSE route from a cursor, reconnecting with `Last-Event-ID` whenever the
   * connection drops (or the broker ended it, e.g. a listener that fell behind) until `until`
   * says the last event came, the broker answers 204 (nothing more will come), or `signal`
   * aborts (the iteration ends). A 4xx is thrown.
   */
  async function* follow(
    path: string,
    from: number | null,
    until: (e: BrokerEvent) => boolean,
    signal?: AbortSignal,
    first?: Response,
  ): AsyncGenerator<BrokerEvent> {
    const seen = { cursor: from, retryMs: reconnectMs }
    let res: Response | null = first ?? null
    for (;;) {
      if (signal?.aborted) return
      try {
        res ??= await doFetch(base + path, {
          headers: {
            ...auth(),
            accept: 'text/event-stream',
            ...(seen.cursor !== null ? { 'last-event-id': String(seen.cursor) } : {}),
          },
          signal,
        })
        if (res.status === 204) return
        if (res.status >= 400 && res.status < 500) throw await apiError(res, `GET ${path}`)
        if (res.ok)
          for await (const event of eventsOf(res, seen)) {
            yield event
            if (until(event)) return
          }
      } catch (err) {
        // Aborted by the caller: the iteration just ends.
        if (signal?.aborted) return
        if (err instanceof BrokerApiError) throw err
        // A dropped connection: reconnect below.
      } finally {
        res = null
      }
      await new Promise((r) => setTimeout(r, seen.retryMs))
    }
  }

  return {
    createSession: (s: {
      workspaceId: string
      title?: string
      externalId?: string
      source?: string
      tags?: string[]
    }) =>
      call<{ session: Session }>('POST', '/v1/sessions', {
        workspace_id: s.workspaceId,
        ...(s.title !== undefined ? { title: s.title } : {}),
        ...(s.externalId !== undefined ? { external_id: s.externalId } : {}),
        ...(s.source !== undefined ? { source: s.source } : {}),
        ...(s.tags !== undefined ? { tags: s.tags } : {}),
      }).then((r) => r.session),

    getSession: (id: string) =>
      call<{ session: Session }>('GET', `/v1/sessions/${encodeURIComponent(id)}`).then(
        (r) => r.session,
      ),

    listSessions: (q: { workspaceId?: string; limit?: number; cursor?: string } = {}) => {
      const params = new URLSearchParams()
      if (q.workspaceId) params.set('workspace_id', q.workspaceId)
      if (q.limit) params.set('limit', String(q.limit))
      if (q.cursor) params.set('cursor', q.cursor)
      return call<Page<Session>>('GET', `/v1/sessions${params.size ? `?${params}` : ''}`)
    },

    /** Queues a turn and answers at once (POST /api/v2/turns). */
    enqueueTurn: (t: TurnInput) =>
      call<{ turn_id: string; session_id: string; events_url: string }>(
        'POST',
        '/api/v2/turns',
        turnBody(t),
      ).then((r) => ({ turnId: r.turn_id, sessionId: r.session_id, eventsUrl: r.events_url })),

    getTurn: (id: string) =>
      call<{ turn: Turn }>('GET', `/api/turns/${encodeURIComponent(id)}`).then((r) => r.turn),

    cancelTurn: (id: string) =>
      call<{ turn: Turn }>('POST', `/api/turns/${encodeURIComponent(id)}/cancel`).then(
        (r) => r.turn,
      ),

    listTurns: (sessionId: string, q: { limit?: number; cursor?: string } = {}) => {
      const params = new URLSearchParams()
      if (q.limit) params.set('limit', String(q.limit))
      if (q.cursor) params.set('cursor', q.cursor)
      const path = `/v1/sessions/${encodeURIComponent(sessionId)}/turns`
      return call<Page<Turn>>('GET', `${path}${params.size ? `?${params}` : ''}`)
    },

    /**
     * Runs a turn and yields its events as they come, ending after its `done` event. A dropped
     * connection is resumed from the last event (`Last-Event-ID`); hanging up does not stop the
     * turn (cancelTurn does).
     */
    async *streamTurn(t: TurnInput, o: { signal?: AbortSignal } = {}): AsyncGenerator<BrokerEvent> {
      const res = await doFetch(`${base}/api/turns`, {
        method: 'POST',
        headers: { ...auth(), 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify(turnBody(t)),
        signal: o.signal,
      })
      if (!res.ok) throw await apiError(res, 'POST /api/turns')
      let turnId: string | null = null
      let cursor: number | null = null
      try {
        for await (const frame of readSse(res.body!)) {
          const event = JSON.parse(frame.data) as BrokerEvent
          turnId ??= event.turn_id
          cursor = event.sequence_num
          yield event
          if (isDone(event)) return
        }
      } catch (err) {
        if (o.signal?.aborted) return
        if (turnId === null) throw err
      }
      if (turnId === null) throw new Error('the turn stream ended before its first event')
      yield* follow(`/api/turns/${turnId}/events`, cursor, isDone, o.signal)
    },

    /**
     * Runs a turn to its end and answers its outcome, text and events: the durable ones, as a
     * replay shows them (streamTurn also yields the partial-message frames).
     */
    async runTurn(t: TurnInput, o: { signal?: AbortSignal } = {}): Promise<TurnOutcome> {
      const events: BrokerEvent[] = []
      for await (const e of this.streamTurn(t, o)) if (!e.ephemeral) events.push(e)
      const done = events.at(-1)
      if (!done || !isDone(done)) throw new Error('the turn ended without its done event')
      const d = done.payload as Done
      const lastText = events
        .filter((e) => e.event_type === 'assistant' && !e.ephemeral)
        .map(assistantText)
        .filter(Boolean)
        .at(-1)
      return {
        turnId: d.turn_id,
        state: d.state,
        text: d.result?.result ?? lastText ?? '',
        error: d.error,
        result: d.result,
        costUsd: d.result?.cost_usd ?? d.result?.total_cost_usd ?? null,
        usage: d.result?.usage ?? null,
        events,
      }
    },

    /** A turn's events from a cursor to its `done` (resuming after drops). */
    turnEvents: (turnId: string, o: { since?: number; signal?: AbortSignal } = {}) =>
      follow(`/api/turns/${encodeURIComponent(turnId)}/events`, o.since ?? null, isDone, o.signal),

    /** Every event of a session after `since`, all pages, in order. */
    async listEvents(sessionId: string, o: { since?: number } = {}): Promise<BrokerEvent[]> {
      const out: BrokerEvent[] = []
      let since = o.since ?? 0
      for (;;) {
        const page = await call<{ data: BrokerEvent[]; has_more: boolean; next_since: number }>(
          'GET',
          `/v1/sessions/${encodeURIComponent(sessionId)}/events?since=${since}&limit=1000`,
        )
        out.push(...page.data)
        if (!page.has_more) return out
        since = page.next_since
      }
    },

    /** A session's events live, from `since`; resumes after every drop until `signal` aborts. */
    followEvents: (sessionId: string, o: { since?: number; signal?: AbortSignal } = {}) =>
      follow(
        `/v1/sessions/${encodeURIComponent(sessionId)}/events/stream`,
        o.since ?? null,
        () => false,
        o.signal,
      ),

    /** Answers a worker's permission request (a `permission_request` event). */
    answerPermission: (
      sessionId: string,
      requestId: string,
      a: { behavior: 'allow' | 'deny'; message?: string; updatedInput?: Record<string, unknown> },
    ) =>
      call<{ event: Record<string, unknown> }>(
        'POST',
        `/v1/sessions/${encodeURIComponent(sessionId)}/permissions/${encodeURIComponent(requestId)}`,
        {
          behavior: a.behavior,
          ...(a.message !== undefined ? { message: a.message } : {}),
          ...(a.updatedInput !== undefined ? { updated_input: a.updatedInput } : {}),
        },
      ).then((r) => r.event),
  }
}

export type BrokerClient = ReturnType<typeof createClient>
