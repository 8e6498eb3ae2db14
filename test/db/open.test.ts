import { describe, expect, test } from 'bun:test'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { getSession, insertSession } from '../../src/db/repos/sessions.ts'
import { openDatabase } from '../../src/db/open.ts'
import { createLogger } from '../../src/log.ts'
import { lineReader } from '../helpers/lines.ts'
import { tempDir } from '../helpers/temp-dir.ts'

const ROOT = resolve(import.meta.dir, '../..')
const log = createLogger('silent')
const openPglite = (dataDir: string) => openDatabase({ databaseUrl: null, dataDir, log })
const lockMessage = (dir: string, pid: number) =>
  `data directory ${dir} is in use by process ${pid}; ` +
  'stop that broker or give this one another CCBROKER_DATA_DIR'

const brokerEnv = (dataDir: string) => ({
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: process.env.HOME ?? '/tmp',
  CCBROKER_DATA_DIR: dataDir,
  CCBROKER_PORT: '0',
  CCBROKER_LOG_LEVEL: 'info',
})

describe('the embedded PGlite data directory', () => {
  test('a second openDatabase on the same directory fails with an error naming the dir and the pid', async () => {
    await using dir = await tempDir()
    const first = await openPglite(dir.path)
    try {
      await expect(openPglite(dir.path)).rejects.toThrow(
        lockMessage(join(dir.path, 'pglite'), process.pid),
      )
      // The first one is still open and answers.
      expect(await first.db.execute('select 1 as one')).toEqual(
        expect.objectContaining({ rows: [{ one: 1 }] }),
      )
    } finally {
      await first.close()
    }
    // Once the first is closed the directory is free again.
    const again = await openPglite(dir.path)
    await again.close()
  })

  test('a lock file left by a dead process is taken over', async () => {
    await using dir = await tempDir()
    const done = Bun.spawn(['true'])
    await done.exited
    const lockFile = join(dir.path, 'pglite', '.cc-broker.lock')
    await Bun.write(lockFile, String(done.pid))
    const database = await openPglite(dir.path)
    try {
      expect(await readFile(lockFile, 'utf8')).toBe(String(process.pid))
    } finally {
      await database.close()
    }
    expect(await Bun.file(lockFile).exists()).toBe(false)
  })

  test('a lock file naming a live process is respected', async () => {
    await using dir = await tempDir()
    await using other = Bun.spawn(['sleep', '60'])
    const lockFile = join(dir.path, 'pglite', '.cc-broker.lock')
    await Bun.write(lockFile, String(other.pid))
    await expect(openPglite(dir.path)).rejects.toThrow(
      lockMessage(join(dir.path, 'pglite'), other.pid),
    )
    other.kill()
    await other.exited
    expect(await readFile(lockFile, 'utf8')).toBe(String(other.pid))
  })

  test('data survives close and reopen', async () => {
    await using dir = await tempDir()
    const first = await openPglite(dir.path)
    const row = await insertSession(first.db, {
      id: 'cse_survivor',
      workspaceId: 'ws-keep',
      title: 'kept',
    })
    await first.close()
    const second = await openPglite(dir.path)
    try {
      expect(await getSession(second.db, 'cse_survivor')).toEqual(row)
    } finally {
      await second.close()
    }
  })

  test('the seed cluster was made by the installed PGlite version (rerun scripts/make-pglite-seed.ts)', async () => {
    const seed = await Bun.file(join(ROOT, 'assets/pglite-seed.json')).json()
    const installed = await Bun.file(
      join(ROOT, 'node_modules/@electric-sql/pglite/package.json'),
    ).json()
    expect(seed).toEqual({ pgliteVersion: installed.version })
  })

  test('a second broker process on the same data directory exits non-zero naming the dir and the pid', async () => {
    await using dir = await tempDir()
    await using first = Bun.spawn([process.execPath, 'src/main.ts'], {
      cwd: ROOT,
      env: brokerEnv(dir.path),
      stdout: 'ignore',
      stderr: 'pipe',
    })
    const firstLog = lineReader(first.stderr)
    await firstLog.until((l) => l.includes('"broker listening"'))

    await using second = Bun.spawn([process.execPath, 'src/main.ts'], {
      cwd: ROOT,
      env: brokerEnv(dir.path),
      stdout: 'ignore',
      stderr: 'pipe',
    })
    const [stderr, exitCode] = await Promise.all([
      new Response(second.stderr).text(),
      second.exited,
    ])
    expect(exitCode).toBe(1)
    const lines = stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'error',
        msg: 'broker failed to start',
        err: expect.objectContaining({
          name: 'DataDirLockedError',
          message: lockMessage(join(dir.path, 'pglite'), first.pid),
        }),
      }),
    ])

    first.kill('SIGTERM')
    expect(await first.exited).toBe(0)
  })
})
