import { Elysia, t } from 'elysia'
import { apiKeyGuard } from '../auth/api-key.ts'
import type { SessionService } from '../sessions/service.ts'
import { taskJson, type ScheduleTasks } from '../turns/schedule-tasks.ts'
import { bounded, errors } from './schemas.ts'
import { auth } from './security.ts'
import { WORKSPACE_ID } from './sessions.ts'

const Task = t.Object({
  task_id: t.String(),
  session_id: t.String(),
  workspace_id: t.String(),
  prompt: t.String(),
  cron: t.Union([t.String(), t.Null()]),
  run_at: t.Union([t.String(), t.Null()]),
  timezone: t.String(),
  state: t.String({ description: 'active, done or cancelled' }),
  next_run_at: t.Union([t.String(), t.Null()]),
  runs: t.Integer(),
  last_run_at: t.Union([t.String(), t.Null()]),
  created_at: t.String(),
})
const tags = ['schedules']

/** An operator's view of scheduled tasks: workers create them, callers can see and cancel them. */
export const schedulesRoutes = (deps: {
  scheduleTasks: ScheduleTasks
  sessions: SessionService
  apiKeys: readonly string[]
}) =>
  new Elysia({ detail: { security: auth.apiKey } })
    .use(apiKeyGuard(deps.apiKeys))
    .get(
      '/v1/sessions/:id/schedules',
      async ({ params }) => {
        await deps.sessions.get(params.id)
        return { data: (await deps.scheduleTasks.list(params.id)).map(taskJson) }
      },
      {
        response: { 200: t.Object({ data: t.Array(Task) }), ...errors(401, 404) },
        detail: { summary: 'A session’s scheduled tasks, newest first', tags },
      },
    )
    .get(
      '/v1/schedules',
      async ({ query }) => {
        const limit = bounded('limit', query.limit, 1, 500, 50)
        const rows = await deps.scheduleTasks.listAll({
          workspaceId: query.workspace_id,
          state: query.state,
          before: query.cursor,
          limit: limit + 1,
        })
        const page = rows.slice(0, limit)
        return {
          data: page.map(taskJson),
          next_cursor: rows.length > limit ? page.at(-1)!.id : null,
        }
      },
      {
        query: t.Object(
          {
            workspace_id: t.Optional(WORKSPACE_ID),
            state: t.Optional(
              t.Union([t.Literal('active'), t.Literal('done'), t.Literal('cancelled')]),
            ),
            cursor: t.Optional(t.String({ description: 'next_cursor of the previous page' })),
            limit: t.Optional(t.Integer({ description: 'Page size, 1-500 (default 50)' })),
          },
          { additionalProperties: true },
        ),
        response: {
          200: t.Object({ data: t.Array(Task), next_cursor: t.Union([t.String(), t.Null()]) }),
          ...errors(400, 401),
        },
        detail: { summary: 'Scheduled tasks of every session, newest first', tags },
      },
    )
    .post(
      '/v1/schedules/:id/cancel',
      async ({ params }) => ({ task: taskJson(await deps.scheduleTasks.cancel(null, params.id)) }),
      {
        response: { 200: t.Object({ task: Task }), ...errors(401, 404, 409) },
        detail: { summary: 'Cancel a scheduled task so it never fires again', tags },
      },
    )
