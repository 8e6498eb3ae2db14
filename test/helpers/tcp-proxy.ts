import type { Socket } from 'bun'

interface Pair {
  client: Socket<Pair>
  upstream: Socket<undefined> | null
  pending: Uint8Array[]
}

/**
 * A loopback TCP proxy in front of `target` whose connections a test can cut at will, as a
 * network (or a load balancer) drops them; new connections go through again.
 */
export function startTcpProxy(target: { hostname: string; port: number }) {
  const pairs = new Set<Pair>()
  const server = Bun.listen<Pair>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(client) {
        const pair: Pair = { client, upstream: null, pending: [] }
        client.data = pair
        pairs.add(pair)
        void Bun.connect({
          ...target,
          socket: {
            open(upstream) {
              pair.upstream = upstream
              for (const chunk of pair.pending) upstream.write(chunk)
              pair.pending = []
            },
            data: (_, chunk) => void client.write(chunk),
            close: () => void client.end(),
            error: () => void client.end(),
          },
        }).catch(() => client.end())
      },
      data(client, chunk) {
        const pair = client.data
        if (pair.upstream) pair.upstream.write(chunk)
        else pair.pending.push(new Uint8Array(chunk))
      },
      close(client) {
        client.data.upstream?.end()
        pairs.delete(client.data)
      },
    },
  })
  return {
    url: `http://127.0.0.1:${server.port}`,
    /** Connections open through the proxy now. */
    open: () => pairs.size,
    /** Drops every open connection, both ways. */
    cut() {
      for (const pair of pairs) {
        pair.client.end()
        pair.upstream?.end()
      }
    },
    stop() {
      this.cut()
      server.stop(true)
    },
    [Symbol.dispose]() {
      this.stop()
    },
  }
}
