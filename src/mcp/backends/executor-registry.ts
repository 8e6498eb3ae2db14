import { UpstreamError } from '../../errors.ts'
import type { FetchLike } from '../../outbound/guard.ts'
import { deadline, errorText, snippet } from './http.ts'

export interface ExecuteRequest {
  executorId: string
  /** Claude Code tool name the executor runs: Bash, Read, Edit, Write, Glob, Grep, LS. */
  tool: string
  arguments: Record<string, unknown>
}

export interface ExecuteResult {
  output: string
  exitCode: number
}

export interface ExecuteOptions {
  signal?: AbortSignal
  /** Called every `progressIntervalMs` while the registry has not answered yet. */
  onProgress?: (elapsedMs: number) => void
}

export type ExecutorRegistryClient = ReturnType<typeof createExecutorRegistryClient>

/** HTTP client of the executor registry: runs Claude Code tools on remote executors. */
export function createExecutorRegistryClient(options: {
  url: string
  timeoutMs?: number
  progressIntervalMs?: number
  fetch?: FetchLike
}) {
  const base = options.url.replace(/\/+$/, '')
  const timeoutMs = options.timeoutMs ?? 10 * 60_000
  const progressIntervalMs = options.progressIntervalMs ?? 5_000
  const doFetch: FetchLike = options.fetch ?? fetch

  async function call(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    what: string,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    const where = `${method} ${path.split('?')[0]}`
    const limit = deadline(signal, timeoutMs)
    let res: Response
    let text: string
    try {
      res = await doFetch(base + path, {
        method,
        signal: limit.signal,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      text = await res.text()
    } catch (err) {
      if (limit.timedOut())
        throw new UpstreamError(
          `executor registry did not answer ${where} (${what}) within ${formatMs(timeoutMs)}; ` +
            'the work may still be running on the executor — check its state before retrying, ' +
            'and split long work into shorter commands',
          { cause: err },
        )
      if (signal?.aborted)
        throw new UpstreamError(`${where} to the executor registry was cancelled by the caller`, {
          cause: err,
        })
      throw new UpstreamError(
        `executor registry at ${base} is unreachable (${where}, ${what}: ${errorText(err)}); ` +
          'it may be down — retry in a moment, or tell the user remote execution is unavailable',
        { cause: err },
      )
    }
    if (!res.ok)
      throw new UpstreamError(
        `executor registry answered ${res.status} to ${where} (${what}): ` +
          `${snippet(text)}; ${adviceFor(res.status)}`,
      )
    try {
      return JSON.parse(text)
    } catch (err) {
      throw new UpstreamError(
        `executor registry answered ${where} (${what}) with a body that is not JSON: ` +
          `${snippet(text)}; retry once, and report it if it persists`,
        { cause: err },
      )
    }
  }

  return {
    async execute(req: ExecuteRequest, opts: ExecuteOptions = {}): Promise<ExecuteResult> {
      const what = `${req.tool} on executor "${req.executorId}"`
      const started = Date.now()
      const ticker = opts.onProgress
        ? setInterval(() => opts.onProgress?.(Date.now() - started), progressIntervalMs)
        : undefined
      try {
        const body = { executor_id: req.executorId, tool: req.tool, arguments: req.arguments }
        const json = await call('POST', '/api/execute', body, what, opts.signal)
        const answer = json as { output?: unknown; exit_code?: unknown } | null
        if (
          typeof answer !== 'object' ||
          answer === null ||
          typeof answer.output !== 'string' ||
          typeof answer.exit_code !== 'number'
        )
          throw new UpstreamError(
            `executor registry answered POST /api/execute (${what}) without ` +
              `{output: string, exit_code: number}: ${snippet(JSON.stringify(json))}; ` +
              'retry once, and report it if it persists',
          )
        return { output: answer.output, exitCode: answer.exit_code }
      } finally {
        clearInterval(ticker)
      }
    },

    async listExecutors(
      workspaceId: string,
      opts: { signal?: AbortSignal } = {},
    ): Promise<unknown> {
      const path = `/api/executors?workspace_id=${encodeURIComponent(workspaceId)}`
      return call('GET', path, undefined, `workspace "${workspaceId}"`, opts.signal)
    },
  }
}

function adviceFor(status: number): string {
  if (status === 404) return 'check the executor_id against list_executors'
  if (status === 400 || status === 422) return 'check the tool arguments and try again'
  if (status === 401 || status === 403) return 'the broker is not allowed to use this executor'
  if (status === 409) return 'the executor is busy or offline; check list_executors and retry'
  return 'retry in a moment, or tell the user the executor registry is failing'
}

function formatMs(ms: number): string {
  return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`
}
