import { Type } from '@sinclair/typebox'
import { Elysia, t } from 'elysia'
import { apiKeyGuard } from '../auth/api-key.ts'
import type { TurnRow } from '../db/schema.ts'
import { cursorFrom } from '../events/sse.ts'
import type { TurnQueue } from '../turns/queue.ts'
import type { TurnStreams } from '../turns/stream.ts'
import { AnyObject, bounded, errors, Event, Int, sseResponses } from './schemas.ts'
import { auth } from './security.ts'
import { WORKSPACE_ID } from './sessions.ts'

const SESSION_ID = t.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$',
  description: 'Session id (created when new): letters, digits, . _ : - (1-128)',
})

const TurnBody = t.Object({
  session_id: SESSION_ID,
  workspace_id: WORKSPACE_ID,
  user_message: t.Union(
    [t.String({ minLength: 1, maxLength: 1_000_000 }), t.Array(AnyObject(), { minItems: 1 })],
    {
      description: 'Text, or content blocks as in the Messages API',
      error:
        'expected the message as non-empty text (at most 1,000,000 characters) or a non-empty ' +
        'array of content blocks as in the Messages API',
    },
  ),
  im_channel_id: t.Optional(t.String({ minLength: 1, maxLength: 500 })),
  im_user_id: t.Optional(t.String({ minLength: 1, maxLength: 500 })),
  metadata: t.Optional(
    Type.Object(
      {
        model: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
        permission_mode: Type.Optional(
          Type.Union(
            ['default', 'acceptEdits', 'bypassPermissions', 'plan', 'dontAsk'].map((m) =>
              Type.Literal(m),
            ),
          ),
        ),
        max_duration_ms: Type.Optional(Int({ minimum: 1000, maximum: 7 * 86_400_000 })),
        max_budget_usd: Type.Optional(
          Type.Number({
            exclusiveMinimum: 0,
            maximum: 1_000_000,
            description:
              'The most this turn may spend in USD (--max-budget-usd); budgets left may lower it',
          }),
        ),
        partial_messages: Type.Optional(
          Type.Boolean({
            description:
              'Text as it is written, in ephemeral stream_event events (default true; false: only whole messages)',
          }),
        ),
      },
      { additionalProperties: true },
    ),
  ),
})

const Turn = t.Object({
  id: t.String(),
  session_id: t.String(),
  workspace_id: t.String(),
  state: t.UnionEnum(['queued', 'running', 'done', 'failed', 'cancelled']),
  attempts: Int(),
  error: t.Union([t.String(), t.Null()]),
  cost_usd: t.Union([t.Number(), t.Null()]),
  usage: t.Unknown(),
  result: t.Unknown(),
  metadata: AnyObject(),
  im_channel_id: t.Union([t.String(), t.Null()]),
  im_user_id: t.Union([t.String(), t.Null()]),
  enqueued_at: t.String(),
  started_at: t.Union([t.String(), t.Null()]),
  finished_at: t.Union([t.String(), t.Null()]),
})

export const turnJson = (r: TurnRow): typeof Turn.static => {
  const result = (r.result ?? null) as Record<string, unknown> | null
  return {
    id: r.id,
    session_id: r.sessionId,
    workspace_id: r.workspaceId,
    state: r.state as typeof Turn.static.state,
    attempts: r.attempts,
    error: r.error,
    // The turn's own cost; older rows have only the CLI's total.
    cost_usd:
      typeof result?.cost_usd === 'number'
        ? result.cost_usd
        : typeof result?.total_cost_usd === 'number'
          ? result.total_cost_usd
          : null,
    usage: result?.usage ?? null,
    result,
    metadata: r.metadata,
    im_channel_id: r.imChannelId,
    im_user_id: r.imUserId,
    enqueued_at: r.enqueuedAt.toISOString(),
    started_at: r.startedAt?.toISOString() ?? null,
    finished_at: r.finishedAt?.toISOString() ?? null,
  }
}

const frames = { data: Event, closes: 'after the turn’s `done` event' }
const tags = ['turns']

export const turnsRoutes = (deps: {
  queue: TurnQueue
  streams: TurnStreams
  apiKeys: readonly string[]
  cancelWaitMs: number
}) => {
  const enqueue = (body: typeof TurnBody.static) =>
    deps.queue.enqueue({
      sessionId: body.session_id,
      workspaceId: body.workspace_id,
      userMessage: body.user_message,
      imChannelId: body.im_channel_id,
      imUserId: body.im_user_id,
      metadata: body.metadata,
    })
  return new Elysia({ detail: { security: auth.apiKey } })
    .use(apiKeyGuard(deps.apiKeys))
    .post(
      '/api/turns',
      async ({ body, request, server }) => {
        const turn = await enqueue(body)
        server?.timeout(request, 0)
        return deps.streams.open(turn, 0, request.signal)
      },
      {
        body: TurnBody,
        detail: {
          summary: 'Run a turn and follow it (SSE until its done frame)',
          description:
            'Creates the session when new, appends the user message, queues the turn and ' +
            'streams its events. Disconnecting does not stop the turn: follow it again with ' +
            'GET /api/turns/{id}/events (the turn id is in every frame).',
          tags,
          responses: sseResponses(frames, 400, 401, 409, 413, 429, 503),
        },
      },
    )
    .post(
      '/api/v2/turns',
      async ({ body, set }) => {
        const turn = await enqueue(body)
        set.status = 202
        return {
          turn_id: turn.id,
          session_id: turn.sessionId,
          events_url: `/api/turns/${turn.id}/events`,
        }
      },
      {
        body: TurnBody,
        response: {
          202: t.Object({ turn_id: t.String(), session_id: t.String(), events_url: t.String() }),
          ...errors(400, 401, 409, 413, 429, 503),
        },
        detail: { summary: 'Queue a turn; answer at once', tags },
      },
    )
    .get(
      '/api/turns/:id',
      async ({ params }) => ({ turn: turnJson(await deps.queue.get(params.id)) }),
      {
        response: { 200: t.Object({ turn: Turn }), ...errors(401, 404) },
        detail: { summary: 'A turn’s state, timing, error, cost and usage', tags },
      },
    )
    .get(
      '/api/turns/:id/events',
      async ({ params, query, headers, request, server }) => {
        const since = bounded('since', query.since, 0, Number.MAX_SAFE_INTEGER, 0)
        const turn = await deps.queue.get(params.id)
        server?.timeout(request, 0)
        return deps.streams.open(
          turn,
          cursorFrom(headers['last-event-id'], since) ?? 0,
          request.signal,
        )
      },
      {
        query: t.Object({ since: t.Optional(t.Integer()) }, { additionalProperties: true }),
        detail: {
          summary: 'Follow a turn: replay after Last-Event-ID/since, then live',
          tags,
          responses: sseResponses(frames, 400, 401, 404),
        },
      },
    )
    .post(
      '/api/turns/:id/cancel',
      async ({ params }) => ({
        turn: turnJson(await deps.queue.cancel(params.id, deps.cancelWaitMs)),
      }),
      {
        response: { 200: t.Object({ turn: Turn }), ...errors(401, 404, 409) },
        detail: {
          summary: 'Cancel a turn: queued → cancelled; running → interrupted and stopped',
          tags,
        },
      },
    )
    .get(
      '/v1/sessions/:id/turns',
      async ({ params, query }) => {
        const limit = bounded('limit', query.limit, 1, 500, 50)
        const rows = await deps.queue.list(params.id, query.cursor, limit + 1)
        const page = rows.slice(0, limit)
        return {
          data: page.map(turnJson),
          next_cursor: rows.length > limit ? page.at(-1)!.id : null,
        }
      },
      {
        query: t.Object(
          { cursor: t.Optional(t.String()), limit: t.Optional(t.Integer()) },
          { additionalProperties: true },
        ),
        response: {
          200: t.Object({ data: t.Array(Turn), next_cursor: t.Union([t.String(), t.Null()]) }),
          ...errors(400, 401),
        },
        detail: { summary: 'A session’s turns, newest first', tags },
      },
    )
}
