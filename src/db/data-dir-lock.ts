import { open, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { BrokerError } from '../errors.ts'
import { isAlive } from '../processes.ts'

export class DataDirLockedError extends BrokerError {
  constructor(dir: string, pid: number) {
    super(
      `data directory ${dir} is in use by process ${pid}; ` +
        'stop that broker or give this one another CCBROKER_DATA_DIR',
    )
    this.name = 'DataDirLockedError'
  }
}

/**
 * PGlite lets two processes open one directory and corrupt it, with no error, so the broker
 * holds a pid file. A file left by a dead process is taken over.
 */
export async function lockDataDir(dir: string): Promise<{ release(): Promise<void> }> {
  const path = join(dir, '.cc-broker.lock')
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o600)
      await handle.writeFile(String(process.pid))
      await handle.close()
      let released = false
      return {
        async release() {
          if (released) return
          released = true
          await rm(path, { force: true })
        },
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim())
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid))
        throw new DataDirLockedError(dir, pid)
      if (pid === process.pid) throw new DataDirLockedError(dir, pid)
      await rm(path, { force: true })
    }
  }
  throw new BrokerError(`could not lock data directory ${dir}`)
}
