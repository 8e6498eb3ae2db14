/** A child's output stream read line by line as it comes; `until` waits for a matching line. */
export function lineReader(stream: ReadableStream<Uint8Array>) {
  const lines: string[] = []
  let ended = false
  let wake: () => void = () => {}
  const done = (async () => {
    let buffer = ''
    const decoder = new TextDecoder()
    for await (const chunk of stream) {
      buffer += decoder.decode(chunk, { stream: true })
      const parts = buffer.split('\n')
      buffer = parts.pop()!
      lines.push(...parts)
      wake()
    }
    if (buffer) lines.push(buffer)
    ended = true
    wake()
  })()
  return {
    lines,
    /** Resolves once the stream has ended. */
    done,
    /** The first line that matches; fails when the stream ends without one. */
    async until(match: (line: string) => boolean): Promise<string> {
      for (;;) {
        const found = lines.find(match)
        if (found !== undefined) return found
        if (ended)
          throw new Error(`output ended without the expected line; got:\n${lines.join('\n')}`)
        await new Promise<void>((resolve) => (wake = resolve))
      }
    },
  }
}
