import { chmod, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'

const FAKE_MAIN = resolve(import.meta.dir, 'fake-claude/main.ts')
const quoted = (value: string) => `"${value.replace(/[\\"$`]/g, '\\$&')}"`

/**
 * Writes `<dir>/claude`, an executable that runs the scripted stand-in for Claude Code with this
 * Bun. It speaks both worker protocols (stdio stream-json and CCR v2) as the real CLI does; what
 * each turn does comes from FAKE_CLAUDE_* variables (see fake-claude/main.ts).
 *
 * `preamble` is shell run first (e.g. choosing a scenario from the arguments).
 */
export async function writeScriptedClaude(dir: string, preamble: string[] = []): Promise<string> {
  const path = join(dir, 'claude')
  await writeFile(
    path,
    [
      '#!/bin/sh',
      ...preamble,
      // One transpiler cache for every worker: in each turn's fresh HOME Bun would write (and the
      // broker remove) a new one, slowing both.
      `export BUN_RUNTIME_TRANSPILER_CACHE_PATH=${quoted(join(dir, 'bun-cache'))}`,
      `exec ${quoted(process.execPath)} --no-env-file ${quoted(FAKE_MAIN)} "$@"`,
      '',
    ].join('\n'),
  )
  await chmod(path, 0o755)
  return path
}
