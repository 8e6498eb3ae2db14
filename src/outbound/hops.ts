import { OutboundRefusedError, UpstreamError } from '../errors.ts'

/** One request of an outbound fetch: the caller's, or one a redirect led to. */
export interface Hop {
  url: URL
  /** The URL for messages: signed URLs carry credentials in the query. */
  shown: string
  method: string
  headers: Headers
  body: NonNullable<RequestInit['body']> | null
  signal: AbortSignal | undefined
  tls: BunFetchRequestInitTLS | undefined
  decompress: boolean | undefined
  keepalive: boolean | undefined
}

export const redirectStatuses: ReadonlySet<number> = new Set([301, 302, 303, 307, 308])

const normalisedMethods = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']
const bodyHeaders = [
  'content-type',
  'content-length',
  'content-encoding',
  'content-language',
  'content-location',
]
const credentialHeaders = ['authorization', 'cookie', 'proxy-authorization']

export async function firstHop(
  input: string | URL | Request,
  init: BunFetchRequestInit,
): Promise<Hop> {
  const request = input instanceof Request ? input : null
  let url: URL
  try {
    url = new URL(input instanceof Request ? input.url : input)
  } catch (err) {
    throw new OutboundRefusedError('could not fetch the URL: it is not a valid URL', { cause: err })
  }
  const headers = new Headers(init.headers ?? request?.headers)
  headers.delete('host')
  let body =
    init.body !== undefined ? init.body : request?.body ? await request.arrayBuffer() : null
  // A stream is read once, and a redirect or the host's next address sends the body again.
  if (body instanceof ReadableStream) body = await new Response(body).arrayBuffer()
  const method = init.method ?? request?.method ?? 'GET'
  const upper = method.toUpperCase()
  return {
    url,
    shown: redact(url),
    method: normalisedMethods.includes(upper) ? upper : method,
    headers,
    body,
    signal: init.signal ?? request?.signal ?? undefined,
    tls: init.tls,
    decompress: init.decompress,
    keepalive: init.keepalive,
  }
}

/** The request a redirect asks for, with method and body changed as browsers change them. */
export function nextHop(hop: Hop, status: number, location: string): Hop {
  let url: URL
  try {
    url = new URL(location, hop.url)
  } catch (err) {
    throw new UpstreamError(`${hop.shown} answered ${status} with a Location that is not a URL`, {
      cause: err,
    })
  }
  const headers = new Headers(hop.headers)
  let { method, body } = hop
  if (
    (status === 303 && method !== 'HEAD') ||
    ((status === 301 || status === 302) && method === 'POST')
  ) {
    method = 'GET'
    body = null
    for (const name of bodyHeaders) headers.delete(name)
  }
  // Another origin gets none of the caller's credentials for this one.
  if (url.origin !== hop.url.origin) for (const name of credentialHeaders) headers.delete(name)
  return { ...hop, url, shown: redact(url), method, headers, body }
}

export function redact(url: URL): string {
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return `the ${url.protocol.slice(0, -1)} URL`
  return `${url.origin}${url.pathname}${url.search ? '?…' : ''}`
}
