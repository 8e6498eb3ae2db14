// Stands in for the IM bridge's internal send endpoints (a service we do not own).

export interface ImBridgeRequest {
  path: string
  secret: string | null
  body: unknown
}

const sendPaths = new Set([
  '/api/internal/imbridge/send',
  '/api/internal/imbridge/send-image',
  '/api/internal/imbridge/send-file',
])

export async function startFakeImBridge(options: { secret: string }) {
  const requests: ImBridgeRequest[] = []
  let failure: { status: number; body: string } | null = null
  let gate: Promise<void> | null = null
  let releaseGate = () => {}

  const http = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(request) {
      const path = new URL(request.url).pathname
      const secret = request.headers.get('x-internal-secret')
      const body = await request.json().catch(() => null)
      requests.push({ path, secret, body })
      if (request.method !== 'POST' || !sendPaths.has(path))
        return new Response('not found', { status: 404 })
      if (secret !== options.secret)
        return Response.json({ error: 'unauthorized' }, { status: 401 })
      if (gate) await gate
      if (failure) return new Response(failure.body, { status: failure.status })
      return Response.json({ ok: true })
    },
  })

  const stop = async () => {
    releaseGate()
    await http.stop(true)
  }
  return {
    url: `http://127.0.0.1:${http.port}`,
    requests,
    /** Bodies of accepted sends, with the path they went to. */
    get sent() {
      return requests
        .filter((r) => r.secret === options.secret && sendPaths.has(r.path))
        .map((r) => ({ path: r.path, body: r.body }))
    },
    /** Every send gets this response until `failWith(null)`. */
    failWith(next: { status: number; body: string } | null) {
      failure = next
    },
    /** Holds every answer until the returned function is called. */
    hold(): () => void {
      gate = new Promise<void>((resolve) => (releaseGate = resolve))
      return () => {
        gate = null
        releaseGate()
      }
    },
    stop,
    [Symbol.asyncDispose]: stop,
  }
}
