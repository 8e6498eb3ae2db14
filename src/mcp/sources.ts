import {
  BadRequestError,
  OutboundRefusedError,
  PayloadTooLargeError,
  UpstreamError,
} from '../errors.ts'
import type { ExecutorRegistryClient } from './backends/executor-registry.ts'
import type { FetchLike } from '../outbound/guard.ts'
import { errorText } from './backends/http.ts'

/** Where the bytes a worker sends come from, and the limits on getting them. */
export interface SourceDeps {
  registry: ExecutorRegistryClient | null
  fetch: FetchLike
  maxBytes: number
  fetchTimeoutMs: number
  signal: AbortSignal
  onProgress?: (elapsedMs: number) => void
}

const executorSource = /^(exe_[^\s:/]+):(\/.*)$/s

/** Bytes of an http(s) URL, an `exe_<id>:/path` file, a data: URL or a base64 string. */
export async function loadSource(src: string, deps: SourceDeps): Promise<Buffer> {
  let bytes: Buffer
  if (/^https?:\/\//i.test(src)) {
    bytes = await fetchCapped(src, deps)
  } else {
    const exe = executorSource.exec(src)
    if (exe) {
      bytes = await readFromExecutor(exe[1] ?? '', exe[2] ?? '', deps)
    } else {
      const data = /^data:[^,]*;base64,/i.exec(src)
      bytes = decodeBase64Strict(data ? src.slice(data[0].length) : src, 'source', true)
    }
  }
  if (bytes.length === 0)
    throw new BadRequestError('the source is empty (0 bytes); nothing to send')
  if (bytes.length > deps.maxBytes)
    throw new PayloadTooLargeError(
      `the source is ${bytes.length} bytes, over the ${deps.maxBytes}-byte limit; ` +
        'send a smaller or compressed version',
    )
  return bytes
}

/**
 * Strict standard base64 (line breaks allowed): a stray character, bad padding or non-zero
 * trailing bits is an error, not silently dropped as Buffer.from would.
 */
export function decodeBase64Strict(input: string, what: string, isSource = false): Buffer {
  const s = input.replace(/[\r\n]+/g, '')
  const bytes = Buffer.from(s, 'base64')
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s) || bytes.toString('base64') !== s)
    throw new BadRequestError(
      `${what} is not valid base64 (standard alphabet A-Z a-z 0-9 + /, "=" padding to a ` +
        'multiple of 4 characters)' +
        (isSource ? '; a source must be an http(s) URL, "exe_<id>:/absolute/path" or base64' : ''),
    )
  return bytes
}

async function fetchCapped(url: string, deps: SourceDeps): Promise<Buffer> {
  const shown = redact(url)
  const controller = new AbortController()
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    controller.abort()
  }, deps.fetchTimeoutMs)
  const onAbort = () => controller.abort()
  if (deps.signal.aborted) controller.abort()
  deps.signal.addEventListener('abort', onAbort, { once: true })
  const fail = (err: unknown): never => {
    // The guard's one answer for every refused or unreachable address, passed on as it is.
    if (err instanceof OutboundRefusedError) throw err
    if (timedOut)
      throw new UpstreamError(
        `downloading ${shown} took longer than ${deps.fetchTimeoutMs} ms; ` +
          'use a faster or smaller source, or put the file on an executor and use exe_<id>:/path',
        { cause: err },
      )
    if (deps.signal.aborted)
      throw new UpstreamError(`downloading ${shown} was cancelled by the caller`, { cause: err })
    throw new UpstreamError(`could not download ${shown}: ${errorText(err)}; check the URL`, {
      cause: err,
    })
  }
  try {
    const res = await deps.fetch(url, { signal: controller.signal }).catch(fail)
    if (!res.ok) {
      await res.body?.cancel().catch(() => {})
      throw new UpstreamError(
        `GET ${shown} answered ${res.status}; check the URL and that it is public`,
      )
    }
    const tooBig = (size: string) =>
      new PayloadTooLargeError(
        `${shown} is ${size}, over the ${deps.maxBytes}-byte limit for images and files; ` +
          'send a smaller or compressed version',
      )
    const declared = Number(res.headers.get('content-length') ?? NaN)
    if (declared > deps.maxBytes) {
      controller.abort()
      throw tooBig(`${declared} bytes`)
    }
    if (!res.body) return Buffer.alloc(0)
    // Count while streaming: a body without (or with a lying) Content-Length stops at the cap.
    const reader = res.body.getReader()
    const chunks: Uint8Array[] = []
    let total = 0
    for (;;) {
      const { done, value } = await reader.read().catch(fail)
      if (done) break
      total += value.length
      if (total > deps.maxBytes) {
        controller.abort()
        await reader.cancel().catch(() => {})
        throw tooBig(`more than ${deps.maxBytes} bytes`)
      }
      chunks.push(value)
    }
    return Buffer.concat(chunks)
  } finally {
    clearTimeout(timer)
    deps.signal.removeEventListener('abort', onAbort)
  }
}

/**
 * Reads a file byte-safely: the executor's Read tool returns text, which mangles binary bytes,
 * so run base64 there and decode here. The byte count after it catches truncated output.
 */
async function readFromExecutor(executorId: string, path: string, deps: SourceDeps) {
  const quoted = shellQuote(path)
  const command = `base64 -w0 -- ${quoted} && echo && wc -c < ${quoted}`
  if (!deps.registry)
    throw new BadRequestError(
      'no executor registry is configured on this broker, so exe_ sources cannot be read; ' +
        'send a URL or base64 instead',
    )
  const result = await deps.registry.execute(
    { executorId, tool: 'Bash', arguments: { command } },
    { signal: deps.signal, onProgress: deps.onProgress },
  )
  const where = `${path} on executor "${executorId}"`
  if (result.exitCode !== 0)
    throw new BadRequestError(
      `reading ${where} failed (exit code ${result.exitCode}): ` +
        `${result.output.trim().slice(0, 300)}; ` +
        'check the path with remote_ls (the executor needs GNU base64), or pass a URL or base64',
    )
  const m = /^([A-Za-z0-9+/=]*)\r?\n\s*(\d+)\s*$/.exec(result.output)
  if (!m)
    throw new UpstreamError(
      `reading ${where} returned output that is not base64 followed by a byte count ` +
        `(${result.output.length} characters); the executor may truncate long output — ` +
        'send the file from a URL instead',
    )
  const bytes = decodeBase64Strict(m[1] ?? '', `the base64 of ${where}`)
  const expected = Number(m[2])
  if (bytes.length !== expected)
    throw new UpstreamError(
      `reading ${where} returned ${bytes.length} of its ${expected} bytes (output truncated by ` +
        'the executor); send the file from a URL instead',
    )
  return bytes
}

/** One POSIX shell word: single quotes, each ' written as '\''. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`
}

/** Signed URLs carry credentials in the query: keep them out of messages. */
function redact(url: string): string {
  try {
    const u = new URL(url)
    return `${u.origin}${u.pathname}${u.search ? '?…' : ''}`
  } catch {
    return 'the URL'
  }
}
