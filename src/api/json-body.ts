import { Elysia } from 'elysia'
import { BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError } from '../errors.ts'

/** Deepest nesting of arrays and objects a JSON body may have. */
export const MAX_JSON_DEPTH = 100

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** The body's bytes, counted as they arrive: past `maxBytes`, chunked or not, it stops. */
async function readLimited(body: ReadableStream<Uint8Array>, maxBytes: number): Promise<string> {
  const reader = body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > maxBytes) {
      await reader.cancel().catch(() => {})
      throw new PayloadTooLargeError(`request body exceeds the limit of ${maxBytes} bytes`)
    }
    chunks.push(value)
  }
  try {
    return utf8.decode(Buffer.concat(chunks))
  } catch {
    throw new BadRequestError('request body is not valid UTF-8')
  }
}

/** The deepest nesting in JSON text, stopping early once past `limit` (strings are skipped). */
export function jsonDepth(text: string, limit: number): number {
  let depth = 0
  let max = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 92)
        i++ // backslash: skip the escaped character
      else if (c === 34) inString = false
    } else if (c === 34) inString = true
    else if (c === 91 || c === 123) {
      if (++depth > max) max = depth
      if (max > limit) return max
    } else if (c === 93 || c === 125) depth--
  }
  return max
}

/** The path (`a.b.0`) of the first key or string holding a NUL character, or null. */
export function nulPath(value: unknown, path = ''): string | null {
  if (typeof value === 'string') return value.includes('\0') ? path : null
  if (typeof value !== 'object' || value === null) return null
  for (const [key, v] of Object.entries(value)) {
    const at = path ? `${path}.${key}` : key
    if (key.includes('\0')) return at
    const found = nulPath(v, at)
    if (found !== null) return found
  }
  return null
}

/** Parses a JSON request body, refusing what no route may store: see jsonBody. */
export async function parseJsonBody(request: Request, maxBytes: number): Promise<unknown> {
  const type = (request.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase()
  if (type !== 'application/json')
    throw new UnsupportedMediaTypeError(
      `request bodies must be JSON (Content-Type: application/json), not ${type || 'untyped'}`,
    )
  const text = await readLimited(request.body!, maxBytes)
  if (jsonDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH)
    throw new BadRequestError(`request body nests deeper than ${MAX_JSON_DEPTH} levels`)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new BadRequestError('request body is not valid JSON')
  }
  // JSON can spell a NUL (\u0000); Postgres text and jsonb cannot hold one.
  if (/\\u0000/i.test(text)) {
    const at = nulPath(value)
    if (at !== null)
      throw new BadRequestError(`${at || 'body'}: contains a NUL character, which cannot be stored`)
  }
  return value
}

/**
 * Every request body is JSON: any other Content-Type is a 415 before a byte is read, the body is
 * counted as it streams (413 past the limit, chunked or not), and nesting deeper than
 * MAX_JSON_DEPTH or a NUL character anywhere is a 400. Requests without a body pass through.
 */
export const jsonBody = (maxBytes: number) =>
  new Elysia({ name: 'cc-broker/json-body' }).onParse(
    { as: 'global' },
    async function parseJson({ request }) {
      if (request.body === null) return undefined
      return parseJsonBody(request, maxBytes)
    },
  )
