import { t } from 'elysia'

export const ErrorBody = t.Object(
  { error: t.String({ description: 'What is wrong, in words' }) },
  { description: 'Every error is JSON with one message' },
)

/** Error responses a route documents, by status. */
export const errors = (...statuses: (400 | 401 | 403 | 404 | 409 | 413 | 429 | 500)[]) =>
  Object.fromEntries(statuses.map((s) => [s, ErrorBody])) as Record<number, typeof ErrorBody>
