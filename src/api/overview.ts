import { Elysia, t } from 'elysia'
import { apiKeyGuard } from '../auth/api-key.ts'
import type { SessionOverviewRow } from '../db/repos/session-overviews.ts'
import type { SessionOverview } from '../sessions/overview.ts'
import { bounded, errors } from './schemas.ts'
import { auth } from './security.ts'
import { WORKSPACE_ID } from './sessions.ts'

const Overview = t.Object({
  id: t.String(),
  workspace_id: t.String(),
  title: t.String(),
  status: t.String(),
  created_at: t.String(),
  last_activity_at: t.String({ description: 'Its newest event (its creation when none)' }),
  running_turn_id: t.Union([t.String(), t.Null()]),
  queued_turns: t.Integer(),
  cost_usd: t.Number({ description: 'The sum of its turns’ total_cost_usd so far' }),
})

const overviewJson = (r: SessionOverviewRow): typeof Overview.static => ({
  id: r.id,
  workspace_id: r.workspaceId,
  title: r.title,
  status: r.status,
  created_at: r.createdAt.toISOString(),
  last_activity_at: r.lastActivityAt.toISOString(),
  running_turn_id: r.runningTurnId,
  queued_turns: r.queuedTurns,
  cost_usd: r.costUsd,
})

export const overviewRoutes = (deps: { overview: SessionOverview; apiKeys: readonly string[] }) =>
  new Elysia({ detail: { security: auth.apiKey } }).use(apiKeyGuard(deps.apiKeys)).get(
    '/v1/overview/sessions',
    async ({ query }) => {
      const page = await deps.overview.list({
        workspaceId: query.workspace_id,
        search: query.q || undefined,
        limit: bounded('limit', query.limit, 1, 500, 100),
      })
      return { data: page.data.map(overviewJson), has_more: page.hasMore }
    },
    {
      query: t.Object(
        {
          workspace_id: t.Optional(WORKSPACE_ID),
          q: t.Optional(t.String({ maxLength: 200, description: 'Part of the id or title' })),
          limit: t.Optional(t.Integer({ description: 'At most this many, 1-500 (default 100)' })),
        },
        { additionalProperties: true },
      ),
      response: {
        200: t.Object({ data: t.Array(Overview), has_more: t.Boolean() }),
        ...errors(400, 401),
      },
      detail: {
        summary: 'Sessions by latest activity, with the running turn, queue depth and cost',
        tags: ['sessions'],
      },
    },
  )
