import { Elysia, t } from 'elysia'
import { apiKeyGuard } from '../auth/api-key.ts'
import type { Metrics } from '../metrics.ts'
import { errors } from './schemas.ts'
import { auth } from './security.ts'

/** Readiness for a load balancer, and the Prometheus metrics. */
export const opsRoutes = (deps: {
  /** Throws (with why) unless the broker can serve: database, migrations, not stopping. */
  ready(): Promise<void>
  metrics: Metrics
  apiKeys: readonly string[]
  /** /metrics without a key (CCBROKER_METRICS_PUBLIC). */
  metricsPublic: boolean
}) =>
  new Elysia()
    .get(
      '/readyz',
      async () => {
        await deps.ready()
        return { status: 'ready' as const }
      },
      {
        detail: {
          summary: 'Ready to serve: database reachable, migrations applied, not shutting down',
          tags: ['health'],
          security: auth.open,
        },
        response: { 200: t.Object({ status: t.Literal('ready') }), ...errors(503) },
      },
    )
    .use(
      new Elysia().use(apiKeyGuard(deps.metricsPublic ? [] : deps.apiKeys)).get(
        '/metrics',
        async () =>
          new Response(await deps.metrics.registry.metrics(), {
            headers: { 'content-type': deps.metrics.registry.contentType },
          }),
        {
          detail: {
            summary: 'Prometheus metrics (text format)',
            tags: ['health'],
            security: deps.metricsPublic ? auth.open : auth.apiKey,
          },
          response: errors(401),
        },
      ),
    )
