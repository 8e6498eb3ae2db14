import { chown, mkdir, readdir } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { freePort } from './broker-process.ts'
import { tempDir, type TempDir } from './temp-dir.ts'

/** The newest PostgreSQL server binaries on this machine, or null. */
export async function pgBinDir(): Promise<string | null> {
  const root = '/usr/lib/postgresql'
  const versions = (await readdir(root).catch(() => [] as string[]))
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a))
  return versions[0] ? join(root, versions[0], 'bin') : null
}

/**
 * A throwaway PostgreSQL cluster for tests that restart or stop the database: initdb in a temp
 * dir (as the unprivileged `postgres` user when the tests run as root), on a free loopback port.
 * The machine's own server is never touched. Disposing stops and removes it.
 */
export interface PgCluster extends AsyncDisposable {
  url: string
  port: number
  /** `pg_ctl restart` (fast by default), answering once it accepts connections again. */
  restart(mode?: 'fast' | 'immediate'): Promise<void>
  stop(mode?: 'fast' | 'immediate'): Promise<void>
  start(): Promise<void>
  /** Whether it accepts connections now. */
  ready(): Promise<boolean>
}

export async function startPgCluster(): Promise<PgCluster> {
  const bin = await pgBinDir()
  if (!bin) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql')
  const dir: TempDir = await tempDir('ccb-pg-')
  const data = join(dir.path, 'data')
  const socketDir = join(dir.path, 'sock')
  await mkdir(socketDir)
  const asRoot = process.getuid?.() === 0
  if (asRoot) {
    const pw = Bun.spawnSync(['id', '-u', 'postgres'])
    const gw = Bun.spawnSync(['id', '-g', 'postgres'])
    const uid = Number(pw.stdout.toString().trim())
    const gid = Number(gw.stdout.toString().trim())
    await chown(dir.path, uid, gid)
    await chown(socketDir, uid, gid)
  }
  const run = async (args: string[]) => {
    const cmd = asRoot ? ['runuser', '-u', 'postgres', '--', ...args] : args
    const proc = Bun.spawn(cmd, { stdout: 'pipe', stderr: 'pipe' })
    const [code, out, err] = await Promise.all([
      proc.exited,
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
    ])
    if (code !== 0) throw new Error(`${args.join(' ')} exited ${code}: ${err || out}`)
  }
  const port = freePort()
  const options = `-p ${port} -k ${socketDir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200`
  const pgCtl = (...args: string[]) =>
    run([join(bin, 'pg_ctl'), '-D', data, '-l', join(dir.path, 'log'), ...args])
  await run([
    join(bin, 'initdb'),
    '-D',
    data,
    '-A',
    'trust',
    '-U',
    'postgres',
    '-N',
    '--no-instructions',
  ])
  await pgCtl('-o', options, '-w', 'start')
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`
  const cluster: PgCluster = {
    url,
    port,
    restart: (mode = 'fast') => pgCtl('-m', mode, '-w', 'restart'),
    stop: (mode = 'fast') => pgCtl('-m', mode, '-w', 'stop'),
    start: () => pgCtl('-o', options, '-w', 'start'),
    async ready() {
      const proc = Bun.spawn([join(bin, 'pg_isready'), '-h', '127.0.0.1', '-p', String(port), '-q'])
      return (await proc.exited) === 0
    },
    async [Symbol.asyncDispose]() {
      await pgCtl('-m', 'immediate', '-w', 'stop').catch(() => {})
      await dir[Symbol.asyncDispose]()
    },
  }
  return cluster
}
