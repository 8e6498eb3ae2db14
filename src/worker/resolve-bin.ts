import { access, constants } from 'node:fs/promises'

/**
 * Finds the Claude Code executable. A binary named in CCBROKER_CLAUDE_BIN that is missing is a
 * start-up error; with no setting, a missing `claude` only disables turns (the broker's API
 * still serves external workers), and `problem` says why.
 */
export async function resolveClaudeBin(
  configured: string | null,
): Promise<{ path: string | null; problem: string }> {
  const name = configured ?? 'claude'
  const path = name.includes('/')
    ? await access(name, constants.X_OK).then(
        () => name,
        () => null,
      )
    : Bun.which(name)
  if (path) return { path, problem: '' }
  if (configured)
    throw new Error(`CCBROKER_CLAUDE_BIN: ${configured} is not an executable file or on PATH`)
  return {
    path: null,
    problem:
      'no Claude Code binary: `claude` is not on PATH and CCBROKER_CLAUDE_BIN is not set; ' +
      'turn requests answer 503 until one is installed',
  }
}
