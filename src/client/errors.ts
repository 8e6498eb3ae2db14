/** A broker answer that is not a success: its status and the broker's `{error}` message. */
export class BrokerApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The whole JSON body, or the text when it was not JSON. */
    readonly body: unknown,
    /** Seconds, from `Retry-After` (429, 503), when the broker sent one. */
    readonly retryAfterSeconds: number | null = null,
  ) {
    super(message)
    this.name = 'BrokerApiError'
  }
}

/** Reads a failed response into a BrokerApiError. */
export async function apiError(res: Response, what: string): Promise<BrokerApiError> {
  const text = await res.text().catch(() => '')
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {
    // Not JSON: kept as text.
  }
  const said =
    typeof body === 'object' &&
    body !== null &&
    typeof (body as { error?: unknown }).error === 'string'
      ? (body as { error: string }).error
      : text || res.statusText
  const retry = Number(res.headers.get('retry-after'))
  return new BrokerApiError(
    res.status,
    `${what} → ${res.status}: ${said}`,
    body,
    Number.isFinite(retry) && res.headers.has('retry-after') ? retry : null,
  )
}
