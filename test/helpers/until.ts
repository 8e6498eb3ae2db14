/** Polls `fn` until it returns a truthy value; fails with `what` when the deadline passes. */
export async function until<T>(
  fn: () => T | Promise<T>,
  { deadlineMs = 20_000, what = 'condition', intervalMs = 10 } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + deadlineMs
  let last: unknown
  for (;;) {
    try {
      const value = await fn()
      if (value) return value as NonNullable<T>
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`, { cause: last })
    await Bun.sleep(intervalMs)
  }
}
