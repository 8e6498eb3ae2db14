const bodySnippetChars = 300

/** A signal that aborts when the caller's does or when `ms` pass; `timedOut()` says which. */
export function deadline(signal: AbortSignal | undefined, ms: number) {
  const timeout = AbortSignal.timeout(ms)
  return {
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    timedOut: () => timeout.aborted && !signal?.aborted,
  }
}

export function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  if (flat === '') return '(empty body)'
  return flat.length > bodySnippetChars ? `${flat.slice(0, bodySnippetChars)}…` : flat
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code
    return typeof code === 'string' && !err.message.includes(code)
      ? `${code}: ${err.message}`
      : err.message
  }
  return String(err)
}
