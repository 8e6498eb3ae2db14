import { Type } from '@sinclair/typebox'
import { Elysia, t } from 'elysia'
import { apiKeyGuard } from '../auth/api-key.ts'
import { cursorFrom } from '../events/sse.ts'
import type { SessionEvents } from '../sessions/client-events.ts'
import { auth } from './security.ts'
import { AnyObject, bounded, errors, Event, sseResponses } from './schemas.ts'

const Payload = Type.Object(
  { type: Type.String({ minLength: 1 }), uuid: Type.Optional(Type.String({ minLength: 1 })) },
  {
    additionalProperties: true,
    description: 'A client event Claude Code accepts: user, control_request, control_response, …',
  },
)

export const sessionEventsRoutes = (deps: {
  sessionEvents: SessionEvents
  apiKeys: readonly string[]
}) =>
  new Elysia({ prefix: '/v1/sessions/:id/events', detail: { security: auth.apiKey } })
    .use(apiKeyGuard(deps.apiKeys))
    .post(
      '',
      async ({ params, body }) => ({
        events: await deps.sessionEvents.append(
          params.id,
          body.events.map((e) => e.payload),
        ),
      }),
      {
        body: t.Object({
          events: t.Array(t.Object({ payload: Payload }), { minItems: 1, maxItems: 100 }),
        }),
        response: {
          200: t.Object({
            events: t.Array(
              t.Object({
                event_id: t.String(),
                sequence_num: t.Union([t.Integer(), t.Null()]),
                duplicate: t.Boolean({ description: 'Already in the log; not stored again' }),
              }),
            ),
          }),
          ...errors(400, 401, 404, 413),
        },
        detail: {
          summary: 'Append client events (user messages, control requests and responses, …)',
          tags: ['events'],
        },
      },
    )
    .get(
      '',
      ({ params, query }) =>
        deps.sessionEvents.page(
          params.id,
          bounded('since', query.since, 0, Number.MAX_SAFE_INTEGER, 0),
          bounded('limit', query.limit, 1, 1000, 100),
        ),
      {
        query: t.Object(
          {
            since: t.Optional(t.Integer({ description: 'Events after this sequence_num (≥ 0)' })),
            limit: t.Optional(t.Integer({ description: 'Page size, 1-1000 (default 100)' })),
          },
          { additionalProperties: true },
        ),
        response: {
          200: t.Object({ data: t.Array(Event), has_more: t.Boolean(), next_since: t.Integer() }),
          ...errors(400, 401, 404),
        },
        detail: { summary: 'Page through a session’s events', tags: ['events'] },
      },
    )
    .get(
      '/stream',
      ({ params, query, headers, request, server }) => {
        server?.timeout(request, 0)
        bounded('since', query.since, 0, Number.MAX_SAFE_INTEGER, 0)
        const since = cursorFrom(headers['last-event-id'], query.since) ?? 0
        return deps.sessionEvents.stream(params.id, since, request.signal)
      },
      {
        query: t.Object(
          { since: t.Optional(t.Integer({ description: 'Events after this (≥ 0)' })) },
          { additionalProperties: true },
        ),
        detail: {
          summary: 'Follow a session: replay after Last-Event-ID or ?since=, then live (SSE)',
          description:
            'Each frame: `id: <sequence_num>` and `data: <event JSON>`; `: keepalive` comments ' +
            'on idle streams. A listener that falls too far behind is disconnected; reconnect ' +
            'with Last-Event-ID.',
          tags: ['events'],
          responses: sseResponses({ data: Event }, 400, 401, 404),
        },
      },
    )
