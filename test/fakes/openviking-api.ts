// What the fake OpenViking server shares between its routes: the error type and envelope
// details, URI canonicalisation, and the version arithmetic its behaviour depends on.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> | null = null,
  ) {
    super(message)
  }
}

/** One entry of `error.details.validation_errors`, as OpenViking normalises Pydantic's errors. */
export interface ValidationIssue {
  loc: string[]
  message: string
  type: string
}

/** The 400 OpenViking answers for a body its Pydantic model rejects. */
export function validationError(issues: ValidationIssue[]): ApiError {
  const first = issues[0]
  const message = first
    ? `Invalid request parameters: ${first.loc.join('.')}: ${first.message}`
    : 'Invalid request parameters'
  return new ApiError(400, 'INVALID_ARGUMENT', message, { validation_errors: issues })
}

export const notFound = (uri: string, type: 'file' | 'directory') =>
  new ApiError(404, 'NOT_FOUND', `${type === 'file' ? 'File' : 'Directory'} not found: ${uri}`, {
    type,
    resource: uri,
  })

/** `0.4.15` → [0, 4, 15]; the fake models releases only. */
export function parseVersion(version: string): number[] {
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new Error(`fake OpenViking: bad version ${version}`)
  return version.split('.').map(Number)
}

export function versionAtLeast(version: string, min: string): boolean {
  const [a, b] = [parseVersion(version), parseVersion(min)]
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! > b[i]!
  return true
}

export const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

export const derivedNames = new Set([
  '.abstract.md',
  '.overview.md',
  '.relations.json',
  '.summary_cache.json',
])
const scopes = new Set(['resources', 'user', 'agent'])
const utf8 = new TextEncoder()

function shorten(component: string): string {
  if (utf8.encode(component).length <= 255) return component
  const hash = new Bun.CryptoHasher('sha256').update(component).digest('hex').slice(0, 8)
  let head = component
  while (utf8.encode(head).length > 255 - 9) head = head.slice(0, -1)
  return `${head}_${hash}`
}

/** Canonical form of a `viking://` URI; throws what the server answers for a bad one. */
export function canonical(raw: string | null, write: boolean): string {
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

export const parentOf = (uri: string) => uri.slice(0, uri.lastIndexOf('/'))
export const nameOf = (uri: string) => uri.slice(uri.lastIndexOf('/') + 1)
