import { Elysia, t } from 'elysia'
import { apiKeyGuard } from '../auth/api-key.ts'
import type { Permissions } from '../turns/permissions.ts'
import { AnyObject, errors } from './schemas.ts'
import { auth } from './security.ts'

export const permissionsRoutes = (deps: { permissions: Permissions; apiKeys: readonly string[] }) =>
  new Elysia({ detail: { security: auth.apiKey } }).use(apiKeyGuard(deps.apiKeys)).post(
    '/v1/sessions/:id/permissions/:request_id',
    async ({ params, body }) => ({
      event: await deps.permissions.answer(params.id, params.request_id, {
        behavior: body.behavior,
        message: body.message,
        updatedInput: body.updated_input,
      }),
    }),
    {
      body: t.Object({
        // Not t.UnionEnum: Elysia fills a missing one with its first value, so `{}` allowed.
        behavior: t.Union([t.Literal('allow'), t.Literal('deny')], {
          description: 'allow runs the tool; deny refuses it (the model sees message)',
        }),
        message: t.Optional(
          t.String({ maxLength: 10_000, description: 'Shown to the model on deny' }),
        ),
        updated_input: t.Optional(AnyObject({ description: 'Replaces the tool input on allow' })),
      }),
      response: { 200: t.Object({ event: AnyObject() }), ...errors(400, 401, 404, 409) },
      detail: {
        summary: 'Answer a worker’s permission request (a permission_request event)',
        tags: ['permissions'],
      },
    },
  )
