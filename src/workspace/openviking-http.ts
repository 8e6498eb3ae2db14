import { BadRequestError, StoreRefusedError, UpstreamError } from '../errors.ts'

export interface OpenVikingRetry {
  /** Tries per request at most, the first included. */
  attempts: number
  /** Delay before the second try; doubles each time (with jitter), capped at 30 s. */
  baseDelayMs: number
  /** No retry starts once this long has passed since the first try (CCBROKER_STORE_RETRY_MS). */
  budgetMs: number
}

export interface OpenVikingHttpOptions {
  /** Server base URL, e.g. `http://127.0.0.1:1933`. */
  url: string
  /** Sent as `X-API-Key`. */
  apiKey?: string
  fetch?: (url: string, init: RequestInit) => Promise<Response>
  retry?: Partial<OpenVikingRetry>
  /** Per attempt; a timeout counts as a network error (retried). */
  timeoutMs?: number
}

interface Call {
  /** Store operation and subject, for error messages: `batch-write`, `"a.txt" in workspace w`. */
  op: string
  what: string
  method: 'GET' | 'POST' | 'DELETE'
  endpoint: string
  query?: Record<string, string>
  body?: unknown
  /** The success body is raw bytes (content/download), not the JSON envelope. */
  raw?: boolean
}

interface Failure {
  ok: false
  /** 0 for a network error or timeout. */
  status: number
  code: string
  message: string
  details: Record<string, unknown> | null
}

type Reply = { ok: true; result: unknown; bytes: Uint8Array } | Failure

export type OpenVikingHttp = ReturnType<typeof createOpenVikingHttp>

export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

const base64 = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')

function failureOf(status: number, text: string): Failure {
  let body: unknown = null
  try {
    body = JSON.parse(text)
  } catch {}
  const error = isRecord(body) && isRecord(body.error) ? body.error : null
  return {
    ok: false,
    status,
    code: typeof error?.code === 'string' ? error.code : `HTTP_${status}`,
    message: typeof error?.message === 'string' ? error.message : text.slice(0, 200) || 'no body',
    details: isRecord(error?.details) ? error.details : null,
  }
}

// Retried: network errors, 429, 5xx, and 409 CONFLICT path_busy (a background refresh holds a
// lock on the path).
const isRetryable = (f: Failure) =>
  f.status === 0 ||
  f.status === 429 ||
  f.status >= 500 ||
  (f.status === 409 && f.code === 'CONFLICT' && f.details?.conflict_type === 'path_busy')

/** OpenViking's HTTP API: the `{status, result}` envelope, retries, and the calls stores use. */
export function createOpenVikingHttp(options: OpenVikingHttpOptions) {
  const base = options.url.replace(/\/+$/, '')
  const fetchFn = options.fetch ?? ((url: string, init: RequestInit) => fetch(url, init))
  const attempts = Math.max(1, options.retry?.attempts ?? 20)
  const baseDelayMs = options.retry?.baseDelayMs ?? 250
  const budgetMs = options.retry?.budgetMs ?? 5_000
  const timeoutMs = options.timeoutMs ?? 120_000
  const describe = () => `openviking at ${base}`

  // A 4xx the server would answer again (a malformed request, a refused name) is a refusal to
  // report, not an outage to wait out. 401/403 are not: a key an operator fixes, the changes
  // wait in the spool meanwhile.
  const fail = (call: Call, f: Failure, tries = 1) => {
    const message =
      `${describe()}: ${call.op} ${call.what} failed: ` +
      `${f.status ? `HTTP ${f.status} ` : ''}${f.code}: ${f.message}` +
      (tries > 1 ? ` (after ${tries} attempts)` : '')
    const refused = f.status >= 400 && f.status < 500 && f.status !== 401 && f.status !== 403
    return refused && !isRetryable(f) ? new StoreRefusedError(message) : new UpstreamError(message)
  }

  async function attempt(call: Call, url: string, init: RequestInit): Promise<Reply> {
    try {
      const res = await fetchFn(url, { ...init, signal: AbortSignal.timeout(timeoutMs) })
      if (res.ok && call.raw)
        return { ok: true, result: null, bytes: new Uint8Array(await res.arrayBuffer()) }
      const text = await res.text()
      if (!res.ok) return failureOf(res.status, text)
      let body: unknown
      try {
        body = JSON.parse(text)
      } catch {
        return failureOf(502, `response is not JSON: ${text.slice(0, 100)}`)
      }
      // Success envelopes may carry `error: null`, `telemetry: null`; only status matters.
      if (isRecord(body) && body.status !== 'error')
        return { ok: true, result: body.result ?? null, bytes: new Uint8Array() }
      return failureOf(res.status, text)
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      return { ok: false, status: 0, code: 'NETWORK', message, details: null }
    }
  }

  /** One call with retries; a failure comes back as a value together with the tries made. */
  async function send(call: Call): Promise<Reply & { tries: number }> {
    const query = Object.entries(call.query ?? {})
      .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
      .join('&')
    const url = `${base}${call.endpoint}${query ? `?${query}` : ''}`
    const headers: Record<string, string> = { accept: 'application/json' }
    if (options.apiKey) headers['x-api-key'] = options.apiKey
    const body = call.body === undefined ? undefined : JSON.stringify(call.body)
    if (body !== undefined) headers['content-type'] = 'application/json'
    const started = Date.now()
    for (let tries = 1; ; tries++) {
      const reply = await attempt(call, url, { method: call.method, headers, body })
      if (reply.ok || tries >= attempts || !isRetryable(reply)) return { ...reply, tries }
      const cap = Math.min(30_000, baseDelayMs * 2 ** (tries - 1))
      const delay = cap / 2 + (Math.random() * cap) / 2
      if (Date.now() - started + delay > budgetMs) return { ...reply, tries }
      await Bun.sleep(delay)
    }
  }

  /** Exact bytes of a file, or null when it is absent (or a directory). */
  async function download(uri: string, what: string): Promise<Uint8Array | null> {
    const call: Call = { op: 'read', what, method: 'GET', endpoint: '/api/v1/content/download' }
    const reply = await send({ ...call, query: { uri }, raw: true })
    if (reply.ok) return reply.bytes
    if (reply.status === 404 || reply.details?.actual === 'directory') return null
    throw fail(call, reply, reply.tries)
  }

  /** Idempotent: a missing path is fine. A directory needs `recursive`. */
  async function remove(uri: string, what: string, recursive = false): Promise<void> {
    const query: Record<string, string> = recursive ? { uri, recursive: 'true' } : { uri }
    const call: Call = { op: 'delete', what, method: 'DELETE', endpoint: '/api/v1/fs', query }
    const reply = await send(call)
    if (reply.ok) return
    if (reply.status === 412)
      throw new BadRequestError(`${what} is a directory; remove the files inside it`)
    throw fail(call, reply, reply.tries)
  }

  /** Creates a directory and its parents; an existing one (409) is success. */
  async function mkdir(uri: string, what: string): Promise<void> {
    const body = { uri }
    const call: Call = { op: 'mkdir', what, method: 'POST', endpoint: '/api/v1/fs/mkdir', body }
    const reply = await send(call)
    const exists = !reply.ok && reply.status === 409 && reply.details?.conflict_type !== 'path_busy'
    if (!reply.ok && !exists) throw fail(call, reply, reply.tries)
  }

  /**
   * Upserts files below the existing directory `rootUri`, bytes as base64. OpenViking v0.4.16
   * writes them sorted by URI whatever the order sent, and a failed write keeps earlier ones.
   */
  async function batchWrite(
    rootUri: string,
    ops: readonly { uri: string; bytes: Uint8Array }[],
    what: string,
  ): Promise<void> {
    const operations = ops.map((o) => ({
      uri: o.uri,
      content_base64: base64(o.bytes),
      mode: 'upsert',
    }))
    // wait=false: the semantic refresh runs in the background; a later write that meets its
    // lock gets 409 path_busy and is retried.
    const body = { root_uri: rootUri, operations, wait: false }
    const endpoint = '/api/v1/content/batch-write'
    const call: Call = { op: 'batch-write', what, method: 'POST', endpoint, body }
    const reply = await send(call)
    if (!reply.ok) throw fail(call, reply, reply.tries)
  }

  /** Every entry below `uri` (`output=original`, hidden files included); null when missing. */
  async function tree(uri: string, what: string, nodeLimit: number): Promise<unknown[] | null> {
    const query = {
      uri,
      output: 'original',
      show_all_hidden: 'true',
      level_limit: '64',
      node_limit: String(nodeLimit),
    }
    const call: Call = { op: 'list', what, method: 'GET', endpoint: '/api/v1/fs/tree', query }
    const reply = await send(call)
    if (!reply.ok) {
      if (reply.status === 404) return null
      throw fail(call, reply, reply.tries)
    }
    if (!Array.isArray(reply.result))
      throw fail(call, failureOf(502, `fs/tree result is not a list`))
    return reply.result
  }

  return { describe, download, remove, mkdir, batchWrite, tree }
}
