import { Elysia } from 'elysia'
import { errors as joseErrors } from 'jose'
import { isDatabaseUnavailable } from '../db/unavailable.ts'
import { BrokerError, BudgetExhaustedError, QueueFullError } from '../errors.ts'
import type { Logger } from '../log.ts'

const joseMessages: Record<string, string> = {
  ERR_JWT_EXPIRED: 'worker token expired',
  ERR_JWS_SIGNATURE_VERIFICATION_FAILED: 'worker token signature is invalid',
  ERR_JWT_CLAIM_VALIDATION_FAILED: 'worker token lacks a required claim',
  ERR_JOSE_ALG_NOT_ALLOWED: 'worker token must be signed with HS256',
}

type Schema = {
  /** The schema's own words for a value that does not fit, where it has them. */
  error?: unknown
  anyOf?: Schema[]
  const?: unknown
  type?: string
  description?: string
  minLength?: number
  minItems?: number
}

const describeMember = (m: Schema): string =>
  m.const !== undefined
    ? JSON.stringify(m.const)
    : m.type === 'string' && m.minLength
      ? 'a non-empty string'
      : m.type === 'array' && m.minItems
        ? 'a non-empty array'
        : `${m.type === 'array' || m.type === 'object' || m.type === 'integer' ? 'an' : 'a'} ${m.type ?? 'value'}`

/** TypeBox words a union failure as "should be one of: 'string', 'string'": say the values. */
function unionExpectation(schema: Schema | undefined): string | null {
  if (!schema?.anyOf) return null
  const members = schema.anyOf.map(describeMember)
  return `expected ${members.length > 1 ? 'one of ' : ''}${members.join(', ')}`
}

/** `<field path>: <what was expected>`, from the error nearest the root (the clearest one). */
function validationMessage(error: unknown): string {
  const e = error as {
    type?: string
    all?: { path?: string; summary?: string; message?: string; schema?: Schema }[]
  }
  const nearest = [...(e.all ?? [])].sort(
    (a, b) => (a.path ?? '').split('/').length - (b.path ?? '').split('/').length,
  )[0]
  if (!nearest) return `${e.type ?? 'request'}: does not match the schema`
  const path = (nearest.path ?? '').replace(/^\//, '').replaceAll('/', '.')
  const own = typeof nearest.schema?.error === 'string' ? nearest.schema.error : null
  const what = own ?? unionExpectation(nearest.schema) ?? nearest.summary ?? nearest.message
  return `${path || e.type || 'body'}: ${what ?? 'invalid value'}`
}

/** Maps every failure to JSON `{error}` with the right status; nothing else reaches a client. */
export const errorMapper = (log: Logger) =>
  new Elysia({ name: 'cc-broker/error-mapper' }).onError(
    { as: 'global' },
    function mapError({ code, error, set, request }) {
      const status = (s: number, message: string) => {
        set.status = s
        set.headers['content-type'] = 'application/json'
        // Both API keys and worker tokens are Bearer credentials.
        if (s === 401) set.headers['www-authenticate'] = 'Bearer'
        return { error: message }
      }

      // A failure inside the body parser comes wrapped in a PARSE error.
      const cause = code === 'PARSE' ? (error as { cause?: unknown }).cause : undefined
      const known = cause instanceof BrokerError ? cause : error
      // A refused turn says which budget, what is spent and how to raise it, as data too.
      if (known instanceof BudgetExhaustedError)
        return { ...status(409, known.message), code: known.code, budget: known.budget }
      if (known instanceof BrokerError) {
        if (known instanceof QueueFullError)
          set.headers['retry-after'] = String(known.retryAfterSeconds)
        return status(known.status, known.message)
      }
      if (error instanceof joseErrors.JOSEError)
        return status(401, joseMessages[error.code] ?? 'worker token is malformed')
      if (isDatabaseUnavailable(error)) {
        set.headers['retry-after'] = '1'
        return status(503, 'the database is unavailable right now; retry in a moment')
      }
      switch (code) {
        case 'VALIDATION':
          return status(400, validationMessage(error))
        case 'PARSE':
          return status(400, 'request body is not valid JSON')
        case 'NOT_FOUND':
          return status(404, `no route ${request.method} ${new URL(request.url).pathname}`)
        case 'INVALID_COOKIE_SIGNATURE':
        case 'INVALID_FILE_TYPE':
          return status(400, String((error as Error).message))
      }
      const httpStatus = (error as { status?: unknown }).status
      if (typeof httpStatus === 'number' && httpStatus >= 400 && httpStatus < 500)
        return status(httpStatus, String((error as Error).message ?? 'bad request'))
      log.error('unhandled error', { err: error, path: new URL(request.url).pathname })
      return status(500, 'internal error')
    },
  )
