// Errors that mean "the database is away", not "this query is wrong": postgres.js reports
// socket errors by code, its own connection errors by name, and the server's shutdown or
// start-up by SQLSTATE; drizzle wraps them all as the cause of a DrizzleQueryError.
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'CONNECTION_CLOSED',
  'CONNECT_TIMEOUT',
  'CONNECTION_DESTROYED',
  'CONNECTION_ENDED',
])
// admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections.
const SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300'])

/** Whether `err` (or an error it wraps) says the database cannot be reached right now. */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code !== 'string') continue
    if (SOCKET_CODES.has(code) || SQLSTATES.has(code) || code.startsWith('08')) return true
  }
  return false
}

/**
 * Runs `fn`, and again while it fails because the database is away, until `deadlineMs` has
 * passed; the last error is thrown then. Any other error is thrown at once.
 */
export async function whileUnavailable<T>(
  fn: () => Promise<T>,
  opts: { deadlineMs: number; pauseMs?: number },
): Promise<T> {
  const until = Date.now() + opts.deadlineMs
  for (;;) {
    try {
      return await fn()
    } catch (err) {
      if (!isDatabaseUnavailable(err) || Date.now() >= until) throw err
      await Bun.sleep(opts.pauseMs ?? 250)
    }
  }
}
