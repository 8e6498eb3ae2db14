// A caller's webhook endpoint: records every POST (headers and raw body) and answers 200, or
// 500 for as many requests as it is told to fail.

export interface ReceivedWebhook {
  headers: Record<string, string>
  body: string
  /** What this receiver answered. */
  status: number
}

export interface WebhookReceiver extends AsyncDisposable {
  url: string
  received: ReceivedWebhook[]
  /** The next `count` requests are answered 500. */
  fail(count: number): void
  stop(): Promise<void>
}

export function startWebhookReceiver(): WebhookReceiver {
  const received: ReceivedWebhook[] = []
  let failing = 0
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(request) {
      const body = await request.text()
      const status = failing > 0 ? 500 : 200
      if (failing > 0) failing--
      received.push({ headers: Object.fromEntries(request.headers), body, status })
      return new Response(status === 200 ? 'ok' : 'receiver down', { status })
    },
  })
  const stop = async () => void (await server.stop(true))
  return {
    url: `http://127.0.0.1:${server.port}/hook`,
    received,
    fail: (count) => void (failing = count),
    stop,
    [Symbol.asyncDispose]: stop,
  }
}
