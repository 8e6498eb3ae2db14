import { Elysia, t } from 'elysia'
import { apiKeyGuard } from '../auth/api-key.ts'
import { BadRequestError } from '../errors.ts'
import type { Budgets } from '../usage/budgets.ts'
import { errors } from './schemas.ts'
import { auth } from './security.ts'
import { WORKSPACE_ID } from './sessions.ts'
import { Usage } from './usage-schema.ts'

const Budget = t.Object({
  workspace_id: t.String(),
  budget_usd: t.Union([t.Number(), t.Null()], { description: 'null: no budget' }),
  from_config: t.Boolean({ description: 'The budget is CCBROKER_WORKSPACE_BUDGET_USD' }),
  spent_usd: t.Number(),
})

const tags = ['usage']

export const workspacesRoutes = (deps: { budgets: Budgets; apiKeys: readonly string[] }) => {
  const budgetJson = async (id: string) => {
    const b = await deps.budgets.workspaceBudget(id)
    return {
      workspace_id: id,
      budget_usd: b.budgetUsd,
      from_config: b.fromConfig,
      spent_usd: b.spentUsd,
    }
  }
  return new Elysia({ prefix: '/v1/workspaces', detail: { security: auth.apiKey } })
    .use(apiKeyGuard(deps.apiKeys))
    .get(
      '/:id/usage',
      async ({ params, query }) => {
        let since: Date | undefined
        if (query.since !== undefined) {
          since = new Date(query.since)
          if (Number.isNaN(since.getTime()))
            throw new BadRequestError(`since: expected an ISO 8601 time, got "${query.since}"`)
        }
        const u = await deps.budgets.workspaceUsage(params.id, since)
        return {
          workspace_id: params.id,
          since: since?.toISOString() ?? null,
          budget_usd: u.budgetUsd,
          total: u.total,
          sessions: [...u.bySession.entries()]
            .map(([session_id, usage]) => ({ session_id, ...usage }))
            .sort((a, b) => b.cost_usd - a.cost_usd || a.session_id.localeCompare(b.session_id)),
        }
      },
      {
        params: t.Object({ id: WORKSPACE_ID }),
        query: t.Object(
          { since: t.Optional(t.String({ description: 'Only results stored since (ISO 8601)' })) },
          { additionalProperties: true },
        ),
        response: {
          200: t.Object({
            workspace_id: t.String(),
            since: t.Union([t.String(), t.Null()]),
            budget_usd: t.Union([t.Number(), t.Null()]),
            total: Usage,
            sessions: t.Array(t.Composite([t.Object({ session_id: t.String() }), Usage])),
          }),
          ...errors(400, 401),
        },
        detail: { summary: 'A workspace’s usage: in all, and by session (most spent first)', tags },
      },
    )
    .get('/:id/budget', ({ params }) => budgetJson(params.id), {
      params: t.Object({ id: WORKSPACE_ID }),
      response: { 200: Budget, ...errors(400, 401) },
      detail: { summary: 'A workspace’s budget and what it has spent', tags },
    })
    .put(
      '/:id/budget',
      async ({ params, body }) => {
        await deps.budgets.setWorkspaceBudget(params.id, body.budget_usd)
        return budgetJson(params.id)
      },
      {
        params: t.Object({ id: WORKSPACE_ID }),
        body: t.Object({
          budget_usd: t.Union([t.Number({ minimum: 0, maximum: 1_000_000 }), t.Null()], {
            description: 'USD across all the workspace’s sessions; null: back to the default',
          }),
        }),
        response: { 200: Budget, ...errors(400, 401) },
        detail: { summary: 'Set or remove a workspace’s budget', tags },
      },
    )
}
