/** A signal that aborts when the caller's does or when `ms` pass; `timedOut()` says which. */
export function deadline(signal: AbortSignal | undefined, ms: number) {
  const timeout = AbortSignal.timeout(ms)
  return {
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    timedOut: () => timeout.aborted && !signal?.aborted,
  }
}
