import { Elysia } from 'elysia'

/** Answers 413 from the declared length before any body is read. */
export const bodyLimit = (maxBytes: number) =>
  new Elysia({ name: 'cc-broker/body-limit' }).onRequest(function limitBody({ request, set }) {
    const length = Number(request.headers.get('content-length') ?? 0)
    if (length > maxBytes) {
      set.status = 413
      return Response.json(
        { error: `request body of ${length} bytes exceeds the limit of ${maxBytes}` },
        { status: 413 },
      )
    }
  })
