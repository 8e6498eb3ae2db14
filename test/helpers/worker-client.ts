import { openSse } from './sse.ts'

/**
 * A scripted CCR v2 worker: the requests real Claude Code makes (src/worker/PROTOCOL.md §2), with the
 * headers it sends, for tests that walk the protocol without the real binary.
 */
export function createWorkerClient(opts: { baseUrl: string; token: string; epoch: number }) {
  const headers = (extra: Record<string, string> = {}) => ({
    authorization: `Bearer ${opts.token}`,
    'anthropic-version': '2023-06-01',
    'user-agent': 'claude-code/test',
    ...extra,
  })
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(opts.baseUrl + path, {
      method,
      headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const text = await res.text()
    let parsed: any = text
    try {
      parsed = JSON.parse(text)
    } catch {
      // Kept as text.
    }
    return { status: res.status, body: parsed, contentType: res.headers.get('content-type') }
  }
  const epoch = opts.epoch
  return {
    epoch,
    getWorker: () => call('GET', '/worker'),
    putWorker: (patch: Record<string, unknown>) =>
      call('PUT', '/worker', { worker_epoch: epoch, ...patch }),
    postEvents: (events: { payload: Record<string, unknown>; ephemeral?: boolean }[], e = epoch) =>
      call('POST', '/worker/events', { worker_epoch: e, events }),
    delivery: (updates: { event_id: string; status: string }[]) =>
      call('POST', '/worker/events/delivery', { worker_epoch: epoch, updates }),
    heartbeat: () =>
      call('POST', '/worker/heartbeat', {
        session_id: opts.baseUrl.split('/').at(-1),
        worker_epoch: epoch,
      }),
    postInternal: (events: Record<string, unknown>[]) =>
      call('POST', '/worker/internal-events', { worker_epoch: epoch, events }),
    getInternal: (query = '') => call('GET', `/worker/internal-events${query}`),
    stream: (cursor?: number) =>
      openSse(
        opts.baseUrl +
          '/worker/events/stream' +
          (cursor !== undefined ? `?from_sequence_num=${cursor}` : ''),
        headers(cursor !== undefined ? { 'last-event-id': String(cursor) } : {}),
      ),
    call,
  }
}

export type WorkerClient = ReturnType<typeof createWorkerClient>

/** Bridges a session on a test broker: a worker client for the new epoch (throws unless 200). */
export async function bridgeWorker(
  broker: { api: (method: string, path: string) => Promise<{ status: number; body: any }> },
  sessionId: string,
): Promise<WorkerClient> {
  const res = await broker.api('POST', `/v1/sessions/${sessionId}/bridge`)
  if (res.status !== 200)
    throw new Error(`bridge of ${sessionId} answered ${res.status}: ${JSON.stringify(res.body)}`)
  return createWorkerClient({
    baseUrl: res.body.api_base_url,
    token: res.body.worker_jwt,
    epoch: res.body.worker_epoch,
  })
}
