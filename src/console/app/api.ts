/** The API key's place: this tab's session storage, never a cookie a browser would send along. */
const KEY_ITEM = 'cc-broker.api-key'

export const savedKey = () => sessionStorage.getItem(KEY_ITEM)
export const saveKey = (key: string) => sessionStorage.setItem(KEY_ITEM, key)
export const forgetKey = () => sessionStorage.removeItem(KEY_ITEM)

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

export type Api = ReturnType<typeof createApi>

/** Calls the broker's API with the key as a Bearer token; a 401 calls `onUnauthorized`. */
export function createApi(key: string, onUnauthorized: () => void) {
  const headers = (extra: Record<string, string> = {}) => ({
    authorization: `Bearer ${key}`,
    ...extra,
  })
  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(path, {
      method,
      cache: 'no-store',
      headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    if (res.status === 401) onUnauthorized()
    const json = (await res.json().catch(() => ({}))) as { error?: string }
    if (!res.ok) throw new ApiError(res.status, json.error ?? `${method} ${path}: ${res.status}`)
    return json as T
  }
  return {
    key,
    headers,
    onUnauthorized,
    get: <T>(path: string) => call<T>('GET', path),
    post: <T>(path: string, body?: unknown) => call<T>('POST', path, body ?? {}),
  }
}

/** Whether the broker takes this key (a broker without keys takes any). */
export async function checkKey(key: string): Promise<boolean> {
  const res = await fetch('/v1/overview/sessions?limit=1', {
    cache: 'no-store',
    headers: { authorization: `Bearer ${key}` },
  })
  if (res.status === 401) return false
  if (!res.ok) throw new ApiError(res.status, `the broker answered ${res.status}`)
  return true
}
