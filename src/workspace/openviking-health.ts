import { isRecord } from './openviking-http.ts'

/**
 * The oldest OpenViking the store works with: v0.4.12–v0.4.15 require a `precondition` on each
 * batch-write operation and forbid the `mode` the store sends, so every push fails there.
 */
export const minOpenVikingVersion = '0.4.16'

export interface OpenVikingCheckOptions {
  /** Server base URL, e.g. `http://127.0.0.1:1933`. */
  url: string
  /** Sent as `X-API-Key`, so that `/health` reports the key's role. */
  apiKey?: string
  fetch?: (url: string, init: RequestInit) => Promise<Response>
  timeoutMs?: number
}

export interface OpenVikingCheck {
  ok: boolean
  /** As `/health` reports it; null when the server did not answer with one. */
  version: string | null
  /** The key's role (`root`, `admin`, `user`); null without a key or when it did not resolve. */
  role: string | null
  /** What an operator has to fix, every finding joined by `; `; null when ok. */
  problem: string | null
}

/** `0.4.16` → release [0, 4, 16]; `0.4.16.dev3` and `0.4.16rc1` are pre-releases of it. */
function parseVersion(version: string): { release: number[]; pre: boolean } | null {
  const m = /^v?(\d+(?:\.\d+)*)(.*)$/.exec(version.trim())
  if (!m) return null
  const pre = /^[-.]?(?:a|b|c|rc|alpha|beta|pre|preview|dev)\d*/i.test(m[2]!)
  return { release: m[1]!.split('.').map(Number), pre }
}

/** Whether `version` is `min` or newer; a pre-release of `min` is older (PEP 440). */
export function isSupportedVersion(version: string, min = minOpenVikingVersion): boolean {
  const [a, b] = [parseVersion(version), parseVersion(min)]
  if (!a || !b) return false
  for (let i = 0; i < Math.max(a.release.length, b.release.length); i++) {
    const [x, y] = [a.release[i] ?? 0, b.release[i] ?? 0]
    if (x !== y) return x > y
  }
  return !a.pre || b.pre
}

/** Reads OpenViking's `/health` and says whether the store can work against it with this key. */
export async function checkOpenViking(options: OpenVikingCheckOptions): Promise<OpenVikingCheck> {
  const base = options.url.replace(/\/+$/, '')
  const fetchFn = options.fetch ?? ((url: string, init: RequestInit) => fetch(url, init))
  const at = `openviking at ${base}`
  const failed = (problem: string): OpenVikingCheck => ({
    ok: false,
    version: null,
    role: null,
    problem,
  })
  const headers: Record<string, string> = { accept: 'application/json' }
  if (options.apiKey) headers['x-api-key'] = options.apiKey
  let body: unknown
  try {
    const signal = AbortSignal.timeout(options.timeoutMs ?? 10_000)
    const res = await fetchFn(`${base}/health`, { headers, signal })
    const text = await res.text()
    if (!res.ok)
      return failed(`${at}: GET /health answered HTTP ${res.status}: ${text.slice(0, 200)}`)
    body = JSON.parse(text)
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    return failed(`${at} is unreachable or not OpenViking: GET /health failed: ${message}`)
  }
  if (!isRecord(body)) return failed(`${at}: GET /health did not answer a JSON object`)
  const version = typeof body.version === 'string' && body.version ? body.version : null
  const role = typeof body.role === 'string' ? body.role : null
  const authMode = typeof body.auth_mode === 'string' ? body.auth_mode : null
  const problems: string[] = []
  if (!version)
    problems.push(`${at} reports no version; cc-broker needs v${minOpenVikingVersion} or newer`)
  else if (!isSupportedVersion(version))
    problems.push(
      `${at} runs v${version.replace(/^v/, '')}; cc-broker needs v${minOpenVikingVersion} or ` +
        'newer (older batch-write refuses its writes)',
    )
  if (body.healthy === false) problems.push(`${at} reports itself unhealthy`)
  // OpenViking v0.4.16 lets a ROOT identity at tenant data in dev mode (no auth) only; api_key
  // mode answers 403 on every data API.
  if (role === 'root' && authMode !== 'dev')
    problems.push(
      `the API key is a ROOT key, which OpenViking answers with 403 PERMISSION_DENIED on data ` +
        'APIs; use a user or admin key of the account',
    )
  else if (authMode === 'api_key' && !options.apiKey)
    problems.push(`${at} requires an API key (CCBROKER_OPENVIKING_API_KEY)`)
  else if (authMode === 'api_key' && role === null)
    problems.push(`${at} does not accept the API key (no identity for it)`)
  return { ok: problems.length === 0, version, role, problem: problems.join('; ') || null }
}
