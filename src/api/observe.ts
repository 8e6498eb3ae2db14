import { Elysia } from 'elysia'
import type { LogFields } from '../log.ts'
import type { Metrics } from '../metrics.ts'

/**
 * One access log line and the HTTP metrics per request: method, route template, status,
 * milliseconds to the response head, and the session the path names.
 */
export function observeRequests(deps: {
  /** Writes one access log line (at the configured level), or nothing. */
  access: (fields: LogFields) => void
  metrics: Pick<Metrics, 'httpRequests' | 'httpDuration'>
}) {
  const started = new WeakMap<Request, number>()
  return new Elysia({ name: 'cc-broker/observe' })
    .onRequest(function startClock({ request }) {
      started.set(request, performance.now())
    })
    .onAfterResponse({ as: 'global' }, function recordRequest(ctx) {
      const { request, set } = ctx
      const value = (ctx as { responseValue?: unknown }).responseValue
      const status = value instanceof Response ? value.status : Number(set.status ?? 200)
      const route = (ctx as { route?: string }).route ?? 'unmatched'
      const ms = performance.now() - (started.get(request) ?? performance.now())
      const method = request.method
      deps.metrics.httpRequests.inc({ route, method, status: String(status) })
      deps.metrics.httpDuration.observe({ route, method }, ms / 1000)
      const session = (ctx.params as Record<string, string> | undefined)?.id
      deps.access({
        method,
        route,
        status,
        ms: Math.round(ms * 10) / 10,
        ...(session && route.startsWith('/v1/sessions/') ? { sessionId: session } : {}),
      })
    })
}
