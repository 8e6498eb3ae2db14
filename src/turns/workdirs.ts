import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Config } from '../config.ts'
import type { SessionRow } from '../db/schema.ts'
import type { WorkerDirs } from '../worker/transport.ts'

/**
 * A turn's directories. The working directory path is the same on every turn of a session
 * (Claude Code keys transcripts by it); HOME is new each turn. With stdio the config directory
 * is kept per session (it holds the transcript `--resume` reads); with CCR v2 it is new each
 * turn, since the broker's internal events rebuild the conversation.
 */
export async function prepareWorkdirs(
  config: Readonly<Config>,
  session: SessionRow,
): Promise<{ dirs: WorkerDirs; cleanup(): Promise<void> }> {
  const base = join(config.runDir, session.id)
  const cwd = join(base, 'project')
  const home = join(base, 'home')
  const configDir =
    config.workerTransport === 'stdio'
      ? join(config.dataDir, 'sessions', session.id, 'claude-config')
      : join(base, 'config')
  await rm(home, { recursive: true, force: true })
  if (config.workerTransport === 'ccr') await rm(configDir, { recursive: true, force: true })
  await Promise.all([cwd, home, configDir].map((d) => mkdir(d, { recursive: true })))
  return {
    dirs: { cwd, home, configDir },
    async cleanup() {
      await rm(home, { recursive: true, force: true })
      if (config.workerTransport === 'ccr') await rm(configDir, { recursive: true, force: true })
    },
  }
}
