import type { Db } from '../db/handle.ts'
import { findEventsByIds, listEventsSince } from '../db/repos/events.ts'
import { getSession } from '../db/repos/sessions.ts'
import { BadRequestError, NotFoundError } from '../errors.ts'
import type { Bus, EventRow } from '../events/bus.ts'
import { ensureUuid, type EventLog } from '../events/log.ts'
import { frameText, RETRY_MS, sseResponse } from '../events/sse.ts'

/** Client event types Claude Code accepts on its stream (worker/PROTOCOL.md §4). */
export const CLIENT_EVENT_TYPES = [
  'user',
  'control_request',
  'control_response',
  'control_cancel_request',
  'update_environment_variables',
  'keep_alive',
  'assistant',
  'system',
] as const

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * Checks one client payload's shape beyond its type, so that nothing a worker would choke on
 * reaches the log. Throws a 400 naming the field (`at` is the payload's path in the request).
 */
export function checkClientPayload(payload: Record<string, unknown>, at: string): void {
  const fail = (field: string, expected: string) => {
    throw new BadRequestError(`${at}.${field}: expected ${expected}`)
  }
  const type = payload.type
  if (typeof type !== 'string' || !(CLIENT_EVENT_TYPES as readonly string[]).includes(type))
    fail('type', `one of ${CLIENT_EVENT_TYPES.join(', ')}`)
  if (payload.uuid !== undefined && (typeof payload.uuid !== 'string' || !payload.uuid))
    fail('uuid', 'a non-empty string')
  switch (type) {
    case 'user': {
      const message = payload.message
      if (!isObject(message)) return fail('message', 'an object {role, content}')
      if (message.role !== 'user') fail('message.role', '"user"')
      const content = message.content
      if (typeof content !== 'string' && !Array.isArray(content))
        fail('message.content', 'a string or an array of content blocks')
      if (typeof content === 'string' && content.length === 0)
        fail('message.content', 'non-empty text')
      return
    }
    case 'control_request': {
      if (typeof payload.request_id !== 'string' || !payload.request_id)
        fail('request_id', 'a non-empty string')
      const request = payload.request
      if (!isObject(request) || typeof request.subtype !== 'string')
        fail('request', 'an object with a string subtype')
      return
    }
    case 'control_response': {
      const response = payload.response
      if (!isObject(response) || typeof response.request_id !== 'string')
        fail('response', 'an object with subtype and request_id')
      return
    }
    case 'control_cancel_request':
      if (typeof payload.request_id !== 'string') fail('request_id', 'a string')
      return
    case 'update_environment_variables': {
      const vars = payload.variables
      if (!isObject(vars)) return fail('variables', 'an object of string values')
      for (const [k, v] of Object.entries(vars))
        if (typeof v !== 'string') fail(`variables.${k}`, 'a string')
      return
    }
  }
}

/** An event as the external API shows it. */
export const eventJson = (e: EventRow) => ({
  event_id: e.eventId,
  sequence_num: e.seq,
  event_type: e.eventType,
  source: e.source,
  epoch: e.epoch,
  turn_id: e.turnId,
  attempt: e.attempt,
  ephemeral: e.ephemeral,
  payload: e.payload,
  created_at: e.createdAt.toISOString(),
})

const LISTENER_PAGE = 500

/** Callers' side of a session's log: append client events, page through it, follow it live. */
export function createSessionEvents(deps: {
  db: Db
  events: EventLog
  bus: Bus
  keepaliveMs: number
}) {
  const { db } = deps
  // The bus hands every listener the same row: serialise each event once, not once per listener.
  const frames = new WeakMap<EventRow, string>()
  const frame = (e: EventRow) => {
    let text = frames.get(e)
    if (text === undefined) {
      text = frameText(null, e.seq, eventJson(e))
      frames.set(e, text)
    }
    return text
  }
  const requireSession = async (id: string) => {
    if (!(await getSession(db, id))) throw new NotFoundError(`session ${id} not found`)
  }

  return {
    /** Appends client events; `event_id` = payload `uuid` (generated when missing). */
    async append(sessionId: string, payloads: Record<string, unknown>[], turnId?: string | null) {
      payloads.forEach((p, i) => checkClientPayload(p, `events.${i}.payload`))
      const ids = payloads.map(ensureUuid)
      const { inserted, duplicates } = await deps.events.append(
        sessionId,
        payloads.map((payload) => ({ payload })),
        { source: 'client', turnId },
      )
      const stored = new Map(inserted.map((r) => [r.eventId, r]))
      for (const r of await findEventsByIds(db, sessionId, duplicates)) stored.set(r.eventId, r)
      return ids.map((id) => ({
        event_id: id,
        sequence_num: stored.get(id)?.seq ?? null,
        duplicate: !inserted.some((r) => r.eventId === id),
      }))
    },

    async page(sessionId: string, since: number, limit: number) {
      await requireSession(sessionId)
      const rows = await listEventsSince(db, sessionId, since, limit + 1, { durable: true })
      const page = rows.slice(0, limit)
      return {
        data: page.map(eventJson),
        has_more: rows.length > limit,
        next_since: page.at(-1)?.seq ?? since,
      }
    },

    async stream(sessionId: string, since: number, signal: AbortSignal) {
      await requireSession(sessionId)
      return sseResponse({
        bus: deps.bus,
        sessionId,
        afterSeq: since,
        replay: (after) => listEventsSince(db, sessionId, after, LISTENER_PAGE, { durable: true }),
        replayPageSize: LISTENER_PAGE,
        frame,
        retryMs: RETRY_MS,
        keepaliveMs: deps.keepaliveMs,
        signal,
      })
    },
  }
}

export type SessionEvents = ReturnType<typeof createSessionEvents>
