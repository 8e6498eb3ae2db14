import { Elysia, t } from 'elysia'
import { errors } from './schemas.ts'
import { auth } from './security.ts'

export const healthRoutes = (check: () => Promise<void>) =>
  new Elysia().get(
    '/healthz',
    async () => {
      await check()
      return { status: 'ok' as const }
    },
    {
      detail: { summary: 'Liveness and database check', tags: ['health'], security: auth.open },
      response: { 200: t.Object({ status: t.Literal('ok') }), ...errors(500) },
    },
  )
