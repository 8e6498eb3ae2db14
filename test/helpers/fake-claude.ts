import { chmod, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'

const FIXTURE = resolve(import.meta.dir, '../../src/testing/fake-claude/main.ts')

/** Escapes a value for use inside double quotes in sh. */
const quoted = (value: string) => `"${value.replace(/[\\"$`]/g, '\\$&')}"`

/**
 * Writes `<dir>/claude`, an executable wrapper that runs the fake CLI with the Bun running the
 * tests (bun need not be on PATH; process.execPath is), and answers its path. `--no-env-file`:
 * Bun would otherwise load a `.env` from the worker's cwd (the workspace), which claude never does.
 */
export async function fakeClaudeBin(dir: string): Promise<string> {
  const path = join(dir, 'claude')
  await writeFile(
    path,
    `#!/bin/sh\nexec ${quoted(process.execPath)} --no-env-file ${quoted(FIXTURE)} "$@"\n`,
  )
  await chmod(path, 0o755)
  return path
}
