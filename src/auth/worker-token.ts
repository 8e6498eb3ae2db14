import { jwtVerify, SignJWT } from 'jose'

export interface WorkerClaims {
  /** Session id (`cse_…`). */
  sid: string
  /** Workspace id. */
  wid: string
  /** The worker epoch this token was issued for. */
  epoch: number
  exp: number
}

export const secretKey = (secret: string) => new TextEncoder().encode(secret)

export async function signWorkerToken(
  key: Uint8Array,
  claims: { sid: string; wid: string; epoch: number },
  ttlSeconds: number,
): Promise<{ token: string; exp: number }> {
  const exp = Math.floor(Date.now() / 1000) + ttlSeconds
  const token = await new SignJWT({ sid: claims.sid, wid: claims.wid, epoch: claims.epoch })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime(exp)
    .sign(key)
  return { token, exp }
}

/** Throws a jose error (→ 401) for a bad signature, an expired token or missing claims. */
export async function verifyWorkerToken(key: Uint8Array, token: string): Promise<WorkerClaims> {
  const { payload } = await jwtVerify(token, key, {
    algorithms: ['HS256'],
    requiredClaims: ['exp', 'sid', 'wid', 'epoch'],
  })
  const { sid, wid, epoch, exp } = payload as Record<string, unknown>
  // jose checks presence, not types.
  if (typeof sid !== 'string' || typeof wid !== 'string' || !Number.isInteger(epoch))
    throw new TypeError('worker token claims have the wrong types')
  return { sid, wid, epoch: epoch as number, exp: exp as number }
}
