import { chmod, readdir } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * Makes a tree its owner's only: directories 700, files 600. For trees whose files were made
 * with modes of their own (PGlite's cluster comes out of its seed archive 666), not the umask's.
 */
export async function privateTree(dir: string): Promise<void> {
  await chmod(dir, 0o700)
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) await privateTree(path)
    else if (entry.isFile()) await chmod(path, 0o600)
  }
}
