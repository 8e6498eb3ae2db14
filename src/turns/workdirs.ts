import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { WorkerDirs } from '../worker/transport.ts'

/**
 * A turn's directories, all empty at the start: the workspace sync fills the working and config
 * directories from the store. The working directory's path is the same on every turn of a
 * session (Claude Code keys transcripts by it, and the transcript comes back with the config
 * directory); HOME is new each turn.
 */
export async function prepareWorkdirs(
  runDir: string,
  sessionId: string,
): Promise<{ dirs: WorkerDirs; cleanup(): Promise<void> }> {
  const base = join(runDir, sessionId)
  const cwd = join(base, 'project')
  const home = join(base, 'home')
  const configDir = join(base, 'config')
  const all = [cwd, home, configDir]
  await Promise.all(all.map((d) => rm(d, { recursive: true, force: true })))
  await Promise.all(all.map((d) => mkdir(d, { recursive: true })))
  return {
    dirs: { cwd, home, configDir },
    async cleanup() {
      await rm(base, { recursive: true, force: true })
    },
  }
}
