import { Elysia } from 'elysia'
import { createHash, timingSafeEqual } from 'node:crypto'
import { UnauthorizedError } from '../errors.ts'
import { bearerToken } from './bearer.ts'

const digest = (s: string) => createHash('sha256').update(s).digest()

/** External API: `Authorization: Bearer <key>` when keys are configured, compared in constant time. */
export const apiKeyGuard = (keys: readonly string[]) => {
  const digests = keys.map(digest)
  return new Elysia({ name: 'cc-broker/api-key-guard' }).derive(
    { as: 'scoped' },
    function checkApiKey({ headers }) {
      if (digests.length === 0) return {}
      const token = bearerToken(headers.authorization)
      if (!token)
        throw new UnauthorizedError('missing or malformed Authorization: Bearer <api key>')
      const given = digest(token)
      let ok = false
      for (const d of digests) ok = timingSafeEqual(d, given) || ok
      if (!ok) throw new UnauthorizedError('unknown API key')
      return {}
    },
  )
}
