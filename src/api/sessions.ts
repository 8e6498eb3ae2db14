import { Elysia, t } from 'elysia'
import { apiKeyGuard } from '../auth/api-key.ts'
import type { UsageTotals } from '../db/repos/usage.ts'
import type { SessionRow } from '../db/schema.ts'
import type { SessionService } from '../sessions/service.ts'
import type { Budgets } from '../usage/budgets.ts'
import { bounded, errors } from './schemas.ts'
import { auth } from './security.ts'
import { Usage } from './usage-schema.ts'

const SESSION_ID = t.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$',
  description: 'Session id: letters, digits, . _ : - (1-128)',
})

const BUDGET_USD = t.Number({
  minimum: 0,
  maximum: 1_000_000,
  description: 'Spend limit in USD across the session’s turns',
})

export const WORKSPACE_ID = t.String({
  pattern: '^(?!\\.{1,2}$)[A-Za-z0-9._-]{1,128}$',
  description: 'Workspace id: letters, digits, dot, dash, underscore (1-128)',
})

const Session = t.Object({
  id: t.String(),
  workspace_id: t.String(),
  title: t.String(),
  status: t.String(),
  epoch: t.Integer(),
  external_id: t.Union([t.String(), t.Null()]),
  source: t.String(),
  tags: t.Array(t.String()),
  claude_session_id: t.String({ description: 'Claude Code session UUID (--session-id/--resume)' }),
  archived: t.Boolean(),
  budget_usd: t.Union([t.Number(), t.Null()], { description: 'The session’s budget; null: none' }),
  forked_from: t.Union([t.String(), t.Null()], { description: 'The session this was forked from' }),
  usage: Usage,
  created_at: t.String(),
  updated_at: t.String(),
})

const CreateSession = t.Object({
  workspace_id: WORKSPACE_ID,
  title: t.Optional(t.String({ maxLength: 500 })),
  external_id: t.Optional(t.String({ minLength: 1, maxLength: 500 })),
  source: t.Optional(t.String({ minLength: 1, maxLength: 100 })),
  tags: t.Optional(t.Array(t.String({ maxLength: 100 }), { maxItems: 50 })),
  budget_usd: t.Optional(BUDGET_USD),
})

const UpdateSession = t.Object({
  budget_usd: t.Optional(
    t.Union([BUDGET_USD, t.Null()], { description: 'A new budget in USD, or null for none' }),
  ),
})

const ForkSession = t.Object({
  session_id: t.Optional(SESSION_ID),
  title: t.Optional(t.String({ maxLength: 500 })),
})

export const sessionJson = (s: SessionRow, usage: UsageTotals): typeof Session.static => ({
  id: s.id,
  workspace_id: s.workspaceId,
  title: s.title,
  status: s.status,
  epoch: s.epoch,
  external_id: s.externalId,
  source: s.source,
  tags: s.tags,
  claude_session_id: s.claudeSessionId,
  archived: s.archived,
  budget_usd: s.budgetUsd,
  forked_from: s.forkedFrom,
  usage,
  created_at: s.createdAt.toISOString(),
  updated_at: s.updatedAt.toISOString(),
})

export const sessionsRoutes = (deps: {
  sessions: SessionService
  budgets: Budgets
  apiKeys: readonly string[]
}) => {
  const withUsage = async (rows: SessionRow[]) => {
    const usage = await deps.budgets.sessionsUsage(rows.map((r) => r.id))
    return rows.map((r) => sessionJson(r, usage.get(r.id)!))
  }
  const one = async (row: SessionRow) => ({ session: (await withUsage([row]))[0]! })
  return new Elysia({ prefix: '/v1/sessions', detail: { security: auth.apiKey } })
    .use(apiKeyGuard(deps.apiKeys))
    .post(
      '',
      async ({ body, set }) => {
        const { session, created } = await deps.sessions.create({
          workspaceId: body.workspace_id,
          title: body.title,
          externalId: body.external_id,
          source: body.source,
          tags: body.tags,
          budgetUsd: body.budget_usd,
        })
        set.status = created ? 201 : 200
        return one(session)
      },
      {
        body: CreateSession,
        response: {
          200: t.Object({ session: Session }),
          201: t.Object({ session: Session }),
          ...errors(400, 401),
        },
        detail: {
          summary:
            'Create a session (an existing external_id in the workspace answers that session)',
          tags: ['sessions'],
        },
      },
    )
    .get(
      '',
      async ({ query }) => {
        const page = await deps.sessions.list({
          workspaceId: query.workspace_id,
          cursor: query.cursor,
          limit: bounded('limit', query.limit, 1, 500, 50),
        })
        return { data: await withUsage(page.data), next_cursor: page.nextCursor }
      },
      {
        query: t.Object(
          {
            workspace_id: t.Optional(WORKSPACE_ID),
            cursor: t.Optional(t.String({ description: 'next_cursor of the previous page' })),
            limit: t.Optional(t.Integer({ description: 'Page size, 1-500 (default 50)' })),
          },
          { additionalProperties: true },
        ),
        response: {
          200: t.Object({ data: t.Array(Session), next_cursor: t.Union([t.String(), t.Null()]) }),
          ...errors(400, 401),
        },
        detail: { summary: 'List sessions, newest first', tags: ['sessions'] },
      },
    )
    .get('/:id', async ({ params }) => one(await deps.sessions.get(params.id)), {
      response: { 200: t.Object({ session: Session }), ...errors(401, 404) },
      detail: { summary: 'Get a session, with its usage and budget', tags: ['sessions'] },
    })
    .patch(
      '/:id',
      async ({ params, body }) => {
        if (body.budget_usd !== undefined)
          await deps.budgets.setSessionBudget(params.id, body.budget_usd)
        return one(await deps.sessions.get(params.id))
      },
      {
        body: UpdateSession,
        response: { 200: t.Object({ session: Session }), ...errors(400, 401, 404) },
        detail: { summary: 'Change a session’s budget', tags: ['sessions'] },
      },
    )
    .post(
      '/:id/fork',
      async ({ params, body, set }) => {
        const session = await deps.sessions.fork(params.id, {
          sessionId: body.session_id,
          title: body.title,
        })
        set.status = 201
        return one(session)
      },
      {
        body: ForkSession,
        response: { 201: t.Object({ session: Session }), ...errors(400, 401, 404, 409) },
        detail: {
          summary: 'Fork a session: a new one whose conversation starts as a copy of this one’s',
          description:
            'The new session is in the same workspace and records forked_from. Its first turn ' +
            'resumes the source’s Claude Code conversation with --fork-session (as the source ' +
            'stood after its last finished turn); from then on the two go their own ways. The ' +
            'source’s events are not copied. Needs the stdio transport (409 under ccr).',
          tags: ['sessions'],
        },
      },
    )
    .post(
      '/:id/bridge',
      async ({ params }) => {
        const b = await deps.sessions.bridge(params.id)
        return {
          worker_jwt: b.workerJwt,
          api_base_url: b.apiBaseUrl,
          expires_in: b.expiresIn,
          worker_epoch: b.workerEpoch,
        }
      },
      {
        response: {
          200: t.Object({
            worker_jwt: t.String(),
            api_base_url: t.String({ description: 'The --sdk-url for the worker' }),
            expires_in: t.Integer({ description: 'Seconds until the token expires' }),
            worker_epoch: t.Integer(),
          }),
          ...errors(401, 404),
        },
        detail: {
          summary: 'Start a new worker generation: bump the epoch, register it, issue its token',
          tags: ['sessions'],
        },
      },
    )
}
