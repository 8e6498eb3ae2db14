// A stand-in for the OpenViking HTTP server, following the real server's HTTP API: the
// envelope, API-key auth with user and ROOT keys, /health, fs/tree (original output),
// content/download, content/batch-write (per version), fs/mkdir and DELETE fs, with the listing
// quirks that lose files (hidden files, `tasks`, sidecars, limits).
import {
  ApiError,
  canonical,
  isObject,
  nameOf,
  notFound,
  parentOf,
  versionAtLeast,
} from './openviking-api.ts'
import { batchWrite } from './openviking-batch.ts'

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

export interface FakeOpenVikingOptions {
  /** Server version, `0.4.12` or newer (batch-write exists from there); default `0.4.16`. */
  version?: string
  /** A user key (role `user`). With neither key the server runs in `dev` mode: no auth. */
  apiKey?: string
  /** The ROOT key: accepted, but refused on every data API (403 PERMISSION_DENIED). */
  rootKey?: string
}

export interface FakeOpenViking {
  url: string
  version: string
  requests: FakeRequest[]
  /** Every stored file by canonical URI (`viking://resources/a/b`), sidecars included. */
  files: Map<string, Uint8Array>
  dirs: Set<string>
  /** Every URI batch-write wrote, in the order written (the server sorts a batch by URI). */
  writes: string[]
  /** The next `n` requests (to `failure.path` when given) answer with this error. */
  failNext(n: number, failure: FakeFailure): void
  /**
   * The next batch-write that gets to writing `uri` fails there (500 INTERNAL unless given):
   * the writes before it in URI order stay, it and those after it do not happen.
   */
  failWrite(uri: string, failure?: FakeFailure): void
  /** Drops the failures not used yet: the server is back. */
  clearFailures(): void
  stop(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

const internalNames = new Set([
  '_system',
  'tasks',
  '.path.ovlock',
  '.redirect.json',
  '.sync_log.json',
])
const modTime = '2026-08-22 10:00:00.123456789 +0000 UTC'
const compareSegments = (a: string[], b: string[]) => {
  for (let i = 0; i < Math.min(a.length, b.length); i++)
    if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1
  return a.length - b.length
}

export function createFakeOpenViking(options: FakeOpenVikingOptions = {}): FakeOpenViking {
  const version = options.version ?? '0.4.16'
  if (!versionAtLeast(version, '0.4.12'))
    throw new Error(`fake OpenViking models v0.4.12 and newer, not ${version}`)
  const authMode = options.apiKey || options.rootKey ? 'api_key' : 'dev'
  const files = new Map<string, Uint8Array>()
  const dirs = new Set(['viking://', 'viking://resources', 'viking://user', 'viking://agent'])
  const requests: FakeRequest[] = []
  const writes: string[] = []
  const failures: FakeFailure[] = []
  const writeFailures = new Map<string, FakeFailure>()

  const mkdirp = (uri: string) => {
    for (let dir = uri; dir.length > 'viking://'.length && !dirs.has(dir); dir = parentOf(dir))
      dirs.add(dir)
  }
  const injected = (f: FakeFailure, message = `injected ${f.code}`) =>
    new ApiError(
      f.status,
      f.code,
      message,
      f.conflictType ? { conflict_type: f.conflictType } : null,
    )
  const takeWriteFailure = (uri: string) => {
    const f = writeFailures.get(uri)
    writeFailures.delete(uri)
    return f && injected(f, `injected ${f.code} writing ${uri}`)
  }
  const batch = { version, files, dirs, mkdirp, writes, takeWriteFailure }

  /** The role of a key, as OpenViking's api_key mode resolves it. */
  function roleOf(key: string | null): 'root' | 'user' {
    if (!key) throw new ApiError(401, 'UNAUTHENTICATED', 'Missing API Key when resolving identity.')
    if (key === options.rootKey) return 'root'
    if (key === options.apiKey) return 'user'
    throw new ApiError(401, 'UNAUTHENTICATED', 'Invalid API Key')
  }

  function health(key: string | null) {
    const result: Record<string, unknown> = { status: 'ok', healthy: true, version }
    result.auth_mode = authMode
    // The identity only for a key that resolves; ROOT's has no account or user (printed None).
    if (key && authMode === 'api_key' && (key === options.apiKey || key === options.rootKey)) {
      const root = key === options.rootKey
      Object.assign(result, {
        account_id: root ? 'None' : 'acme',
        user_id: root ? 'None' : 'ccbroker',
        role: root ? 'root' : 'user',
      })
    }
    return Response.json(result)
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
    if (at === 'POST /api/v1/content/batch-write') return batchWrite(batch, body)
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
      const bearer = req.headers.get('authorization')?.replace(/^Bearer /, '') ?? null
      const key = req.headers.get('x-api-key') ?? bearer
      if (url.pathname === '/health') return health(key)
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
      if (failure) return envelope(failure.status, injected(failure))
      try {
        // Every route here is a tenant data API, which api_key mode refuses to ROOT keys.
        if (authMode === 'api_key' && roleOf(key) === 'root')
          throw new ApiError(
            403,
            'PERMISSION_DENIED',
            'ROOT API keys cannot access tenant-scoped data APIs in api_key mode. Use a ' +
              'user/admin API key for data access, or trusted mode for upstream identity assertion.',
          )
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
    version,
    requests,
    files,
    dirs,
    writes,
    failNext: (n, failure) => {
      for (let i = 0; i < n; i++) failures.push(failure)
    },
    failWrite: (uri, failure = { status: 500, code: 'INTERNAL' }) =>
      void writeFailures.set(uri, failure),
    clearFailures: () => {
      failures.length = 0
      writeFailures.clear()
    },
    stop,
    [Symbol.asyncDispose]: stop,
  }
}
