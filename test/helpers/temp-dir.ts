import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TempDir {
  path: string
  [Symbol.asyncDispose](): Promise<void>
}

/** A fresh directory under the OS temp dir; disposing it removes it with everything inside. */
export async function tempDir(prefix = 'ccbroker-test-'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix))
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) }
}
