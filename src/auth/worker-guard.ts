import { Elysia } from 'elysia'
import { ForbiddenError, UnauthorizedError } from '../errors.ts'
import { bearerToken } from './bearer.ts'
import { verifyWorkerToken } from './worker-token.ts'

/**
 * Worker endpoints: a valid worker JWT for the session in the path. Runs at `derive` (before
 * body validation) so a bad token is a 401 whatever the body holds.
 */
export const workerGuard = (key: Uint8Array) =>
  new Elysia({ name: 'cc-broker/worker-guard' }).derive(
    { as: 'scoped' },
    async function resolveWorkerClaims({ headers, params }) {
      const token = bearerToken(headers.authorization)
      if (!token) throw new UnauthorizedError('missing or malformed Authorization: Bearer header')
      const claims = await verifyWorkerToken(key, token).catch((err) => {
        if (err instanceof TypeError) throw new UnauthorizedError(err.message)
        throw err
      })
      const sessionId = (params as Record<string, string | undefined>).id
      if (sessionId !== claims.sid)
        throw new ForbiddenError(`worker token is for session ${claims.sid}, not ${sessionId}`)
      return { worker: claims }
    },
  )
