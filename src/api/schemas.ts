import { Type, type IntegerOptions } from '@sinclair/typebox'
import { t } from 'elysia'
import { BadRequestError } from '../errors.ts'

export const ErrorBody = t.Object(
  { error: t.String({ description: 'What is wrong, in words' }) },
  { description: 'Every error is JSON with one message' },
)

/** Error responses a route documents, by status. */
export const errors = (...statuses: (400 | 401 | 403 | 404 | 409 | 413 | 429 | 500 | 503)[]) =>
  Object.fromEntries(statuses.map((s) => [s, ErrorBody])) as Record<number, typeof ErrorBody>

/**
 * The documented responses of an SSE route. Its `detail.responses` replaces the ones generated
 * from `response`, so the error responses are listed here as well.
 */
export const sseResponses = (...statuses: Parameters<typeof errors>) => ({
  200: { description: 'text/event-stream' },
  ...Object.fromEntries(
    statuses.map((s) => [
      s,
      {
        description: ErrorBody.description!,
        content: { 'application/json': { schema: ErrorBody } },
      },
    ]),
  ),
})

/**
 * A JSON integer. Elysia's `t.Integer` also accepts numeric strings in a body ("1"), which hides
 * a caller's type error; TypeBox's own type does not.
 */
export const Int = (opts?: IntegerOptions) => Type.Integer(opts)

/**
 * A query integer within bounds. Bounds are checked here, not in the schema: Elysia reports a
 * coerced query value out of range without the parameter's name.
 */
export function bounded(
  name: string,
  value: number | undefined,
  min: number,
  max: number,
  fallback: number,
): number {
  if (value === undefined) return fallback
  if (value < min || value > max)
    throw new BadRequestError(`${name}: expected an integer from ${min} to ${max}, got ${value}`)
  return value
}

/** Any JSON object (not an array, not a string): Elysia's `t.Record` lets a string through. */
export const AnyObject = (opts?: { description?: string }) =>
  Type.Object({}, { additionalProperties: true, ...opts })
