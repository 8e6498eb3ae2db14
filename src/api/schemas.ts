import { Type, type IntegerOptions, type TSchema } from '@sinclair/typebox'
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
 * The documented responses of an SSE route, given what its `data:` lines hold. The generator
 * drops `detail.responses` when the route declares `response`, so SSE routes declare only these.
 */
export const sseResponses = (
  frame: { data: TSchema; event?: string; closes?: string },
  ...statuses: Parameters<typeof errors>
) => ({
  200: {
    description: `Server-sent events${frame.closes ? `; the stream closes ${frame.closes}` : ''}`,
    content: {
      'text/event-stream': {
        schema: {
          type: 'string' as const,
          description:
            'One frame per event, ended by a blank line: ' +
            (frame.event ? `\`event: ${frame.event}\`, ` : '') +
            '`id: <sequence_num>` (resume with Last-Event-ID) and `data: <JSON on one line>` ' +
            'shaped as `x-sse-data`. Lines starting with `:` are comments: `: connected` first, ' +
            '`: keepalive` on an idle stream.',
          'x-sse-data': frame.data,
        },
      },
    },
  },
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

/** An event as the external API shows it (eventJson in sessions/client-events.ts). */
export const Event = t.Object({
  event_id: t.String(),
  sequence_num: Int(),
  event_type: t.String(),
  source: t.String(),
  epoch: Int(),
  turn_id: t.Union([t.String(), t.Null()]),
  attempt: t.Union([Int(), t.Null()], {
    description: 'Which attempt of its turn: 0 before the first, then 1, 2 (a re-run)',
  }),
  ephemeral: t.Boolean(),
  payload: AnyObject(),
  created_at: t.String(),
})
