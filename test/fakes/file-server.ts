// A tiny HTTP server for URL sources: fixed files, a long stream without Content-Length,
// a response that lies about its length, and one that never answers.

export async function startFileServer() {
  const files = new Map<string, Uint8Array>()
  const paths: string[] = []
  let streamedBytes = 0
  const hanging: (() => void)[] = []

  const http = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(request) {
      const url = new URL(request.url)
      paths.push(url.pathname + url.search)
      if (url.pathname === '/stream') {
        // /stream?bytes=N: N bytes in 64 KiB chunks, chunked encoding, no Content-Length.
        let left = Number(url.searchParams.get('bytes') ?? 0)
        const chunk = new Uint8Array(64 * 1024).fill(0x61)
        return new Response(
          new ReadableStream({
            pull(controller) {
              if (left <= 0) return controller.close()
              const piece = left >= chunk.length ? chunk : chunk.subarray(0, left)
              left -= piece.length
              streamedBytes += piece.length
              controller.enqueue(piece)
            },
          }),
        )
      }
      if (url.pathname === '/hang') {
        await new Promise<void>((resolve) => hanging.push(resolve))
        return new Response('too late')
      }
      const bytes = files.get(url.pathname)
      if (!bytes) return new Response('no such file', { status: 404 })
      return new Response(bytes)
    },
  })

  // Bun.serve rewrites Content-Length to the real size, so the lying response is written raw.
  const raw = Bun.listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      data(socket) {
        socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${1 << 30}\r\n\r\nsmall`)
      },
    },
  })

  const stop = async () => {
    for (const release of hanging) release()
    raw.stop(true)
    await http.stop(true)
  }
  return {
    url: `http://127.0.0.1:${http.port}`,
    /** Served at their key, e.g. files.set('/cat.png', bytes) → GET {url}/cat.png. */
    files,
    /** Answers any GET with a header claiming 1 GiB (and a 5-byte body). */
    declaredHugeUrl: `http://127.0.0.1:${raw.port}/declared-huge`,
    /** Paths requested, in order. */
    paths,
    /** Bytes /stream handed to the socket so far. */
    get streamedBytes() {
      return streamedBytes
    },
    stop,
    [Symbol.asyncDispose]: stop,
  }
}
