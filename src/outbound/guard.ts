import { lookup as dnsLookup } from 'node:dns/promises'
import { OutboundRefusedError, UpstreamError } from '../errors.ts'
import {
  type Address,
  type AllowRules,
  isAddressAllowed,
  isIpLiteral,
  isNameAllowed,
  normaliseName,
  parseAddress,
  parseFetchAllow,
} from './addresses.ts'
import { type Hop, firstHop, nextHop, redirectStatuses } from './hops.ts'

/** The fetch the HTTP clients of remote services use (the global one unless a test gives its own). */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

export interface OutboundFetchOptions {
  /** CCBROKER_FETCH_ALLOW entries, or the rules parseFetchAllow made of them. */
  allow?: readonly string[] | AllowRules
  maxRedirects?: number
  /** Every address of a host name; by default the system resolver, both families. */
  lookup?: (hostname: string) => Promise<string[]>
  fetch?: FetchLike
}

/** A fetch that only reaches public addresses (and allowed ones), redirects included. */
export type OutboundFetch = (
  input: string | URL | Request,
  init?: BunFetchRequestInit,
) => Promise<Response>

// Errors that mean no byte of the request left, so the host's next address may be tried.
const notConnected = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'ConnectionRefused',
  'FailedToOpenSocket',
])

const systemLookup = async (hostname: string) =>
  (await dnsLookup(hostname, { all: true })).map((a) => a.address)

export function createOutboundFetch(opts: OutboundFetchOptions = {}): OutboundFetch {
  const rules = isRules(opts.allow) ? opts.allow : parseFetchAllow(opts.allow ?? [])
  const maxRedirects = opts.maxRedirects ?? 5
  if (!Number.isInteger(maxRedirects) || maxRedirects < 0)
    throw new Error(`maxRedirects must be a whole number ≥ 0, got ${maxRedirects}`)
  const lookup = opts.lookup ?? systemLookup
  const send = opts.fetch ?? fetch

  /** The checked addresses of a hop's host, or the one refusal. */
  async function addressesOf(hop: Hop, refused: (cause?: unknown) => Error): Promise<Address[]> {
    const { hostname } = hop.url
    const isLiteral = isIpLiteral(hostname)
    let found: string[]
    if (isLiteral) {
      found = [hostname.replace(/^\[(.*)\]$/, '$1')]
    } else {
      try {
        found = await abortable(lookup(hostname), hop.signal)
      } catch (err) {
        if (hop.signal?.aborted) throw err
        throw refused(err)
      }
    }
    let addresses: Address[]
    try {
      addresses = unique(found.map(parseAddress))
    } catch (err) {
      throw refused(err)
    }
    if (addresses.length === 0) throw refused()
    const skipChecks = !isLiteral && isNameAllowed(hostname, rules)
    if (!skipChecks && !addresses.every((a) => isAddressAllowed(a, rules))) throw refused()
    return addresses
  }

  /** One request to the checked address itself: Host and SNI name the host, no second lookup. */
  async function sendHop(hop: Hop, refused: (cause?: unknown) => Error): Promise<Response> {
    hop.signal?.throwIfAborted()
    const addresses = await addressesOf(hop, refused)
    // SNI carries names only; for an address the certificate is checked against the address.
    const tls: BunFetchRequestInitTLS = { ...hop.tls }
    delete tls.serverName
    delete tls.servername
    if (hop.url.protocol === 'https:' && !isIpLiteral(hop.url.hostname))
      tls.serverName = normaliseName(hop.url.hostname)
    const headers = new Headers(hop.headers)
    headers.set('host', hop.url.host)
    const init: BunFetchRequestInit = {
      method: hop.method,
      headers,
      body: hop.body,
      signal: hop.signal,
      redirect: 'manual',
      // An environment proxy would be judged against, and dial, something other than the address.
      proxy: false,
      tls,
      decompress: hop.decompress,
      keepalive: hop.keepalive,
    }
    let last: unknown
    for (const addr of addresses) {
      try {
        return await send(addressUrl(hop.url, addr), init)
      } catch (err) {
        if (hop.signal?.aborted) throw err
        last = err
        if (!notConnected.has(errorCode(err))) break
      }
    }
    throw refused(last)
  }

  return async function outboundFetch(input, init = {}) {
    const first = await firstHop(input, init)
    // One message for a refused address and for one that did not answer, so a worker cannot
    // tell a closed internal port from a refused one.
    const refused = (cause?: unknown) =>
      new OutboundRefusedError(
        `could not fetch ${first.shown}: the address is not allowed or not reachable`,
        { cause },
      )
    let hop = first
    for (let redirects = 0; ; redirects++) {
      const { protocol } = hop.url
      if (protocol !== 'http:' && protocol !== 'https:')
        throw new OutboundRefusedError(
          `could not fetch ${first.shown}: ` +
            (redirects > 0 ? `it redirects to ${hop.shown}; ` : '') +
            'only http: and https: URLs are fetched',
        )
      const res = await sendHop(hop, refused)
      if (!redirectStatuses.has(res.status) || init.redirect === 'manual')
        return asFetched(res, hop.url, redirects > 0)
      await res.body?.cancel().catch(() => {})
      const location = res.headers.get('location')
      if (location === null)
        throw new UpstreamError(`${hop.shown} answered ${res.status} without a Location header`)
      if (init.redirect === 'error')
        throw new UpstreamError(`${hop.shown} answered ${res.status} (a redirect)`)
      if (redirects >= maxRedirects)
        throw new UpstreamError(`${first.shown} redirected more than ${maxRedirects} times`)
      hop = nextHop(hop, res.status, location)
    }
  }
}

function isRules(allow: OutboundFetchOptions['allow']): allow is AllowRules {
  return allow !== undefined && !Array.isArray(allow)
}

function unique(addresses: Address[]): Address[] {
  const seen = new Map(addresses.map((a) => [a.toString(), a]))
  return [...seen.values()]
}

/** The hop's URL with the checked address as its host. */
function addressUrl(url: URL, addr: Address): URL {
  const host = addr.kind() === 'ipv6' ? `[${addr.toString()}]` : addr.toString()
  const out = new URL(url)
  out.hostname = host
  out.hash = ''
  // The setter ignores what a URL cannot hold (an IPv6 zone): the name would then be dialled.
  if (out.hostname !== host) throw new Error(`${host} cannot be put in a URL`)
  return out
}

// The response came from the address: give it the URL the caller would expect.
function asFetched(res: Response, url: URL, redirected: boolean): Response {
  const shown = new URL(url)
  shown.hash = ''
  Object.defineProperty(res, 'url', { value: shown.href })
  Object.defineProperty(res, 'redirected', { value: redirected })
  return res
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : ''
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise
  signal.throwIfAborted()
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}
