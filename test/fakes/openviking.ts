// A stand-in for the OpenViking HTTP server, following the real server's HTTP API: the
// envelope, auth, fs/tree (original output), content/download, content/batch-write, fs/mkdir and
// DELETE fs, with the listing quirks that lose files (hidden files, `tasks`, sidecars, limits).

export interface FakeRequest {
  method: string
  path: string
  /** Path and raw query string as sent, to check URL-encoding. */
  url: string
  query: Record<string, string>
  apiKey: string | null
  body: unknown
}

export interface FakeFailure {
  status: number
  code: string
  /** Sent as `error.details.conflict_type` (`path_busy`). */
  conflictType?: string
  /** Only requests to this route (`/api/v1/content/batch-write`) use it up; any when absent. */
  path?: string
}

export interface FakeOpenViking {
  url: string
  requests: FakeRequest[]
  /** Every stored file by canonical URI (`viking://resources/a/b`), sidecars included. */
  files: Map<string, Uint8Array>
  dirs: Set<string>
  /** The next `n` requests (to `failure.path` when given) answer with this error. */
  failNext(n: number, failure: FakeFailure): void
  /** Drops the failures not used yet: the server is back. */
  clearFailures(): void
  stop(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> | null = null,
  ) {
    super(message)
  }
}

const MiB = 1024 * 1024
const internalNames = new Set([
  '_system',
  'tasks',
  '.path.ovlock',
  '.redirect.json',
  '.sync_log.json',
])
const derivedNames = new Set([
  '.abstract.md',
  '.overview.md',
  '.relations.json',
  '.summary_cache.json',
])
const scopes = new Set(['resources', 'user', 'agent'])
const modTime = '2026-08-22 10:00:00.123456789 +0000 UTC'
const utf8 = new TextEncoder()

function shorten(component: string): string {
  if (utf8.encode(component).length <= 255) return component
  const hash = new Bun.CryptoHasher('sha256').update(component).digest('hex').slice(0, 8)
  let head = component
  while (utf8.encode(head).length > 255 - 9) head = head.slice(0, -1)
  return `${head}_${hash}`
}

/** Canonical form of a `viking://` URI; throws what the server answers for a bad one. */
function canonical(raw: string | null, write: boolean): string {
  if (!raw?.startsWith('viking://')) throw new ApiError(400, 'INVALID_URI', `Invalid URI: ${raw}`)
  const rest = raw.slice('viking://'.length)
  if (/%2f|%5c/i.test(rest))
    throw new ApiError(400, 'INVALID_URI', `Encoded separators are not allowed: ${raw}`)
  if (/\{[A-Za-z_]\w*:\w+\}/.test(rest))
    throw new ApiError(400, 'INVALID_ARGUMENT', `Unknown path variable in ${raw}`)
  if (write && /[?#]/.test(rest))
    throw new ApiError(400, 'INVALID_URI', `URI path must not contain ? or #: ${raw}`)
  const parts = rest.split('/').filter((p) => p !== '')
  if (rest.includes('\\') || parts.some((p) => p === '.' || p === '..' || /^[A-Za-z]:/.test(p)))
    throw new ApiError(403, 'PERMISSION_DENIED', `Unsafe URI path: ${raw}`)
  if (parts.length > 0 && !scopes.has(parts[0]!))
    throw new ApiError(400, 'INVALID_URI', `Invalid scope in ${raw}`)
  return `viking://${parts.map(shorten).join('/')}`
}

const parentOf = (uri: string) => uri.slice(0, uri.lastIndexOf('/'))
const nameOf = (uri: string) => uri.slice(uri.lastIndexOf('/') + 1)
const compareSegments = (a: string[], b: string[]) => {
  for (let i = 0; i < Math.min(a.length, b.length); i++)
    if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1
  return a.length - b.length
}

export function createFakeOpenViking({ apiKey }: { apiKey?: string } = {}): FakeOpenViking {
  const files = new Map<string, Uint8Array>()
  const dirs = new Set(['viking://', 'viking://resources', 'viking://user', 'viking://agent'])
  const requests: FakeRequest[] = []
  const failures: FakeFailure[] = []

  const mkdirp = (uri: string) => {
    for (let dir = uri; dir.length > 'viking://'.length && !dirs.has(dir); dir = parentOf(dir))
      dirs.add(dir)
  }

  function tree(uri: string, query: URLSearchParams) {
    if (!dirs.has(uri)) throw notFound(uri, 'directory')
    const levelLimit = Number(query.get('level_limit') ?? '3')
    const nodeLimit = Number(query.get('node_limit') ?? query.get('limit') ?? '1000')
    if (!Number.isInteger(levelLimit) || levelLimit < 0)
      throw new ApiError(400, 'INVALID_ARGUMENT', 'level_limit must be a non-negative integer')
    const showHidden = query.get('show_all_hidden') === 'true'
    const original = query.get('output') === 'original'
    const prefix = uri === 'viking://' ? uri : `${uri}/`
    const found: { rel: string[]; uri: string; isDir: boolean; size: number }[] = []
    const consider = (key: string, isDir: boolean, size: number) => {
      if (!key.startsWith(prefix) || key === uri) return
      const rel = key.slice(prefix.length).split('/')
      if (rel.some((s) => internalNames.has(s)) || rel.length > levelLimit) return
      if (!isDir && !showHidden && rel[rel.length - 1]!.startsWith('.')) return
      found.push({ rel, uri: key, isDir, size })
    }
    for (const dir of dirs) consider(dir, true, 0)
    for (const [key, bytes] of files) consider(key, false, bytes.length)
    found.sort((a, b) => compareSegments(a.rel, b.rel))
    return found.slice(0, nodeLimit).map((e) =>
      original
        ? {
            name: e.rel[e.rel.length - 1],
            size: e.size,
            mode: e.isDir ? 16877 : 33188,
            modTime,
            isDir: e.isDir,
            rel_path: e.rel.join('/'),
            uri: e.uri,
          }
        : {
            uri: e.uri,
            size: e.size,
            isDir: e.isDir,
            modTime,
            rel_path: e.rel.join('/'),
            abstract: '',
          },
    )
  }

  const notFound = (uri: string, type: 'file' | 'directory') =>
    new ApiError(404, 'NOT_FOUND', `${type === 'file' ? 'File' : 'Directory'} not found: ${uri}`, {
      type,
      resource: uri,
    })

  function download(uri: string): Response {
    if (dirs.has(uri))
      throw new ApiError(400, 'INVALID_ARGUMENT', `${uri} is a directory`, {
        resource: uri,
        expected: 'file',
        actual: 'directory',
      })
    const bytes = files.get(uri)
    if (!bytes) throw notFound(uri, 'file')
    return new Response(bytes, {
      headers: {
        'content-type': 'application/octet-stream',
        'content-disposition': `attachment; filename*=UTF-8''${encodeURIComponent(nameOf(uri))}`,
      },
    })
  }

  function batchWrite(body: unknown) {
    const allowed = new Set(['root_uri', 'operations', 'wait', 'timeout', 'telemetry'])
    if (!isObject(body) || Object.keys(body).some((k) => !allowed.has(k)))
      throw new ApiError(400, 'INVALID_ARGUMENT', 'invalid batch-write body')
    const root = canonical(String(body.root_uri), true)
    if (root.split('/').length <= 3)
      throw new ApiError(400, 'INVALID_ARGUMENT', `root_uri must be below a scope: ${root}`)
    if (files.has(root)) throw new ApiError(400, 'INVALID_ARGUMENT', `${root} is not a directory`)
    if (!dirs.has(root)) throw notFound(root, 'directory')
    const ops = body.operations
    if (!Array.isArray(ops) || ops.length === 0)
      throw new ApiError(400, 'INVALID_ARGUMENT', 'operations must be a non-empty list')
    if (ops.length > 256)
      throw new ApiError(429, 'RESOURCE_EXHAUSTED', `${ops.length} operations exceed 256`)
    const seen = new Set<string>()
    let total = 0
    const planned = ops.map((op: unknown) => {
      const keys = new Set(['uri', 'content', 'content_base64', 'mode'])
      if (!isObject(op) || Object.keys(op).some((k) => !keys.has(k)))
        throw new ApiError(400, 'INVALID_ARGUMENT', 'invalid operation')
      const uri = canonical(String(op.uri), true)
      if (!uri.startsWith(`${root}/`) || seen.has(uri))
        throw new ApiError(400, 'INVALID_ARGUMENT', `${uri} is outside root_uri or repeated`)
      seen.add(uri)
      if (derivedNames.has(nameOf(uri)))
        throw new ApiError(400, 'INVALID_ARGUMENT', `cannot write derived semantic file: ${uri}`)
      const mode = op.mode ?? 'replace'
      if (!['replace', 'append', 'create', 'upsert'].includes(String(mode)))
        throw new ApiError(400, 'UNSUPPORTED_MODE', `unsupported mode ${mode}`)
      if ((op.content === undefined) === (op.content_base64 === undefined))
        throw new ApiError(400, 'INVALID_ARGUMENT', 'give exactly one of content, content_base64')
      let bytes: Uint8Array
      if (op.content_base64 !== undefined) {
        const text = String(op.content_base64)
        const decoded = Buffer.from(text, 'base64')
        // Strict: only canonical, padded base64 survives a decode/encode round trip unchanged.
        if (mode === 'append' || decoded.toString('base64') !== text)
          throw new ApiError(400, 'INVALID_ARGUMENT', `invalid content_base64 for ${uri}`)
        bytes = new Uint8Array(decoded.buffer, decoded.byteOffset, decoded.byteLength)
      } else bytes = utf8.encode(String(op.content))
      if (bytes.length > 8 * MiB)
        throw new ApiError(429, 'RESOURCE_EXHAUSTED', `${uri}: ${bytes.length} bytes exceed 8 MiB`)
      total += bytes.length
      if (total > 16 * MiB) throw new ApiError(429, 'RESOURCE_EXHAUSTED', `request exceeds 16 MiB`)
      if (dirs.has(uri)) throw new ApiError(400, 'INVALID_ARGUMENT', `${uri} is a directory`)
      if (mode === 'create' && files.has(uri))
        throw new ApiError(409, 'ALREADY_EXISTS', `File already exists: ${uri}`)
      if ((mode === 'replace' || mode === 'append') && !files.has(uri)) throw notFound(uri, 'file')
      return { uri, bytes, mode }
    })
    const result = {
      root_uri: root,
      created: [] as string[],
      updated: [] as string[],
      unchanged: [] as string[],
    }
    for (const { uri, bytes, mode } of planned) {
      const old = files.get(uri)
      mkdirp(parentOf(uri))
      const next = mode === 'append' && old ? Buffer.concat([old, bytes]) : bytes
      if (!old) result.created.push(uri)
      else if (Buffer.compare(old, next) === 0) result.unchanged.push(uri)
      else result.updated.push(uri)
      files.set(uri, new Uint8Array(next))
      // OpenViking summarises every directory written to .
      for (let dir = parentOf(uri); dir.length >= root.length; dir = parentOf(dir)) {
        files.set(`${dir}/.abstract.md`, utf8.encode(`summary of ${nameOf(dir)}`))
        files.set(`${dir}/.overview.md`, utf8.encode(`# ${nameOf(dir)}\n`))
      }
    }
    files.set(`${root}/.relations.json`, utf8.encode('[]'))
    return { ...result, semantic_status: 'queued', vector_status: 'queued', queue_status: null }
  }

  function mkdir(body: unknown) {
    if (!isObject(body)) throw new ApiError(400, 'INVALID_ARGUMENT', 'invalid mkdir body')
    const uri = canonical(String(body.uri), true)
    if (dirs.has(uri) || files.has(uri))
      throw new ApiError(409, 'CONFLICT', `Directory already exists: ${uri}`)
    mkdirp(uri)
    return { uri }
  }

  function remove(uri: string, recursive: boolean) {
    if (files.delete(uri) || !dirs.has(uri)) return { uri }
    if (!recursive)
      throw new ApiError(412, 'FAILED_PRECONDITION', `${uri} is a directory; pass recursive=true`)
    for (const key of [...files.keys()]) if (key.startsWith(`${uri}/`)) files.delete(key)
    for (const dir of [...dirs]) if (dir === uri || dir.startsWith(`${uri}/`)) dirs.delete(dir)
    return { uri }
  }

  async function route(req: Request, url: URL, body: unknown): Promise<unknown> {
    const q = url.searchParams
    const at = `${req.method} ${url.pathname}`
    if (at === 'GET /api/v1/fs/tree') return tree(canonical(q.get('uri'), false), q)
    if (at === 'GET /api/v1/content/download') return download(canonical(q.get('uri'), false))
    if (at === 'POST /api/v1/content/batch-write') return batchWrite(body)
    if (at === 'POST /api/v1/fs/mkdir') return mkdir(body)
    if (at === 'DELETE /api/v1/fs')
      return remove(canonical(q.get('uri'), false), q.get('recursive') === 'true')
    throw new ApiError(404, 'NOT_FOUND', `no route ${at}`)
  }

  const envelope = (status: number, error: ApiError | null, result?: unknown) =>
    Response.json(
      error
        ? {
            status: 'error',
            error: { code: error.code, message: error.message, details: error.details },
          }
        : { status: 'ok', result, error: null, telemetry: null },
      { status },
    )

  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(req) {
      const url = new URL(req.url)
      if (url.pathname === '/health') return Response.json({ status: 'ok', healthy: true })
      const bearer = req.headers.get('authorization')?.replace(/^Bearer /, '') ?? null
      const key = req.headers.get('x-api-key') ?? bearer
      let body: unknown = null
      if (req.method === 'POST') {
        const text = await req.text()
        try {
          body = JSON.parse(text)
        } catch {
          body = text
        }
      }
      const query = Object.fromEntries(url.searchParams)
      requests.push({
        method: req.method,
        path: url.pathname,
        url: url.pathname + url.search,
        query,
        apiKey: key,
        body,
      })
      const failureAt = failures.findIndex((f) => !f.path || f.path === url.pathname)
      const failure = failureAt >= 0 ? failures.splice(failureAt, 1)[0] : undefined
      if (failure) {
        const details = failure.conflictType ? { conflict_type: failure.conflictType } : null
        return envelope(
          failure.status,
          new ApiError(failure.status, failure.code, `injected ${failure.code}`, details),
        )
      }
      try {
        if (apiKey && key !== apiKey)
          throw new ApiError(401, 'UNAUTHENTICATED', key ? 'Invalid API key' : 'Missing API key')
        if (typeof body === 'string')
          throw new ApiError(400, 'INVALID_ARGUMENT', 'body is not JSON')
        const result = await route(req, url, body)
        return result instanceof Response ? result : envelope(200, null, result)
      } catch (err) {
        if (err instanceof ApiError) return envelope(err.status, err)
        throw err
      }
    },
  })

  const stop = () => server.stop(true)
  return {
    url: `http://127.0.0.1:${server.port}`,
    requests,
    files,
    dirs,
    failNext: (n, failure) => {
      for (let i = 0; i < n; i++) failures.push(failure)
    },
    clearFailures: () => void (failures.length = 0),
    stop,
    [Symbol.asyncDispose]: stop,
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
