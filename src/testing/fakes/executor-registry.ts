// Stands in for the executor registry (a service we do not own): POST /api/execute and
// GET /api/executors, with in-memory files, per-tool scripts, failures and a hold gate.

export interface ExecuteCall {
  executor_id: string
  tool: string
  arguments: Record<string, unknown>
}

/** A normal answer, or a raw HTTP response to simulate a failing registry. */
export type FakeAnswer = { output: string; exit_code: number } | { status: number; body: string }

export interface RecordedRequest {
  method: string
  path: string
  query: Record<string, string>
  body: unknown
}

const quotedWord = String.raw`'(?:[^']|'\\'')*'`
const base64Command = new RegExp(
  String.raw`^base64 -w0 -- (${quotedWord})(?: && echo && wc -c < (${quotedWord}))?$`,
)

export async function startFakeExecutorRegistry() {
  const requests: RecordedRequest[] = []
  const files = new Map<string, Uint8Array>()
  const scripts = new Map<string, (call: ExecuteCall) => FakeAnswer | Promise<FakeAnswer>>()
  let executors: unknown = []
  let failure: { status: number; body: string } | null = null
  let gate: { promise: Promise<void>; release: () => void } | null = null
  let inFlight = 0
  let abortedRequests = 0

  const defaultAnswer = (call: ExecuteCall): FakeAnswer => {
    const command = typeof call.arguments.command === 'string' ? call.arguments.command : ''
    if (call.tool === 'Bash') {
      const b64 = base64Command.exec(command)
      if (b64) {
        const path = unquote(b64[1] ?? '')
        if (b64[2] !== undefined && unquote(b64[2]) !== path)
          return { output: 'wc: path differs from base64 path\n', exit_code: 2 }
        const bytes = files.get(path)
        if (!bytes) return { output: `base64: ${path}: No such file or directory\n`, exit_code: 1 }
        const encoded = Buffer.from(bytes).toString('base64')
        return {
          output: b64[2] === undefined ? encoded : `${encoded}\n${bytes.length}\n`,
          exit_code: 0,
        }
      }
      const echo = /^echo (.*)$/s.exec(command)
      if (echo) return { output: `${echo[1]}\n`, exit_code: 0 }
    }
    return { output: `${call.tool} ${JSON.stringify(call.arguments)}`, exit_code: 0 }
  }

  const http = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(request) {
      const url = new URL(request.url)
      const body = request.method === 'POST' ? await request.json().catch(() => null) : undefined
      requests.push({
        method: request.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        body,
      })
      if (failure) return new Response(failure.body, { status: failure.status })
      if (request.method === 'GET' && url.pathname === '/api/executors')
        return Response.json(executors)
      if (request.method !== 'POST' || url.pathname !== '/api/execute')
        return new Response('not found', { status: 404 })
      const call = body as ExecuteCall
      inFlight += 1
      request.signal.addEventListener('abort', () => (abortedRequests += 1), { once: true })
      try {
        if (gate) await gate.promise
        const answer = await (scripts.get(call.tool) ?? defaultAnswer)(call)
        if ('status' in answer) return new Response(answer.body, { status: answer.status })
        return Response.json(answer)
      } finally {
        inFlight -= 1
      }
    },
  })

  const stop = async () => {
    gate?.release()
    await http.stop(true)
  }
  return {
    url: `http://127.0.0.1:${http.port}`,
    requests,
    /** Bytes the default Bash base64 command serves, by absolute path. */
    files,
    /** Answers every POST /api/execute for `tool` (Bash, Read, …) instead of the default. */
    script(tool: string, answer: (call: ExecuteCall) => FakeAnswer | Promise<FakeAnswer>) {
      scripts.set(tool, answer)
    },
    setExecutors(list: unknown) {
      executors = list
    },
    /** Every request gets this response until `failWith(null)`. */
    failWith(next: { status: number; body: string } | null) {
      failure = next
    },
    /** Holds every /api/execute answer until the returned function is called. */
    hold(): () => void {
      let release = () => {}
      const promise = new Promise<void>((resolve) => (release = resolve))
      const held = { promise, release: () => (release(), (gate = null)) }
      gate = held
      return held.release
    },
    /** /api/execute requests received and not yet answered. */
    get inFlight() {
      return inFlight
    },
    /** /api/execute requests whose client went away before the answer. */
    get abortedRequests() {
      return abortedRequests
    },
    stop,
    [Symbol.asyncDispose]: stop,
  }
}

function unquote(word: string): string {
  return word.slice(1, -1).replaceAll("'\\''", "'")
}
