import { Elysia } from 'elysia'
import { isLoopbackHost } from '../config.ts'
import { BadRequestError, ForbiddenError, MisdirectedRequestError } from '../errors.ts'

export interface RequestGuardOptions {
  /** With no API keys only loopback Hosts, the public URL's and `allowedHosts` are served. */
  apiKeysSet: boolean
  /** Host names (lower case, no port) served besides loopback ones; `*` serves every Host. */
  allowedHosts: readonly string[]
  /** Origins that may call the API cross-site (CORS); none by default. */
  corsOrigins: readonly string[]
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])
const CORS_HEADERS = 'authorization, content-type, last-event-id'
const CORS_METHODS = 'GET, POST, PUT, DELETE, OPTIONS'

/** The name part of a Host header (`[::1]:8085` → `::1`, `Example.com:80` → `example.com`). */
export function hostName(host: string): string {
  const h = host.trim().toLowerCase()
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']'))
  const colon = h.lastIndexOf(':')
  return colon >= 0 ? h.slice(0, colon) : h
}

/**
 * What a browser page elsewhere must not do: reach the broker under a foreign Host (DNS
 * rebinding) while it has no API keys, change anything from a foreign Origin, or read answers
 * cross-site unless CORS names its origin. NUL bytes in a path or query are refused here, since
 * Postgres cannot store them.
 */
export function requestGuard(opts: RequestGuardOptions) {
  const allowed = new Set(opts.allowedHosts)
  const cors = new Set(opts.corsOrigins)
  const hostServed = (host: string) =>
    opts.apiKeysSet || allowed.has('*') || isLoopbackHost(host) || allowed.has(host)
  return new Elysia({ name: 'cc-broker/request-guard' }).onRequest(function guardRequest({
    request,
    set,
  }) {
    const hostHeader = request.headers.get('host') ?? ''
    const host = hostName(hostHeader)
    if (!hostServed(host))
      throw new MisdirectedRequestError(
        `this broker does not serve the host "${host}" while it has no API keys; use a ` +
          'loopback address, or list the name in CCBROKER_ALLOWED_HOSTS',
      )
    const url = new URL(request.url)
    if (/%00/.test(url.pathname) || /%00/.test(url.search))
      throw new BadRequestError('the path or query contains a NUL character (%00)')
    const origin = request.headers.get('origin')
    if (!origin) return
    const listed = cors.has(origin)
    if (listed) {
      set.headers['access-control-allow-origin'] = origin
      set.headers.vary = 'Origin'
      if (request.method === 'OPTIONS' && request.headers.has('access-control-request-method'))
        return new Response(null, {
          status: 204,
          headers: {
            'access-control-allow-origin': origin,
            'access-control-allow-methods': CORS_METHODS,
            'access-control-allow-headers': CORS_HEADERS,
            'access-control-max-age': '600',
            vary: 'Origin',
          },
        })
    }
    const own = URL.parse(origin)?.host.toLowerCase() === hostHeader.trim().toLowerCase()
    if (!SAFE_METHODS.has(request.method) && !own && !listed)
      throw new ForbiddenError(
        `requests from the origin ${origin} may not change anything here; list it in ` +
          'CCBROKER_CORS_ORIGINS to allow it',
      )
  })
}
