import { access, constants, readFile, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { ConfigError, isLoopbackHost, loadConfig, type Config } from '../config.ts'
import { pendingMigrations } from '../db/migrate.ts'
import { openDatabase } from '../db/open.ts'
import { createLogger } from '../log.ts'
import { isAlive } from '../processes.ts'
import { resolveClaudeBin } from '../worker/resolve-bin.ts'
import { checkOpenViking, minOpenVikingVersion } from '../workspace/openviking-health.ts'
import type { Command } from './command.ts'

export interface Check {
  ok: boolean
  label: string
  detail: string
  /** What to do about a failed check. */
  hint?: string
}

/** The newest Claude Code that accepts a loopback `--sdk-url` (the ccr transport). */
const CCR_NEWEST = [2, 1, 120]

const versionOf = (text: string) => /(\d+)\.(\d+)\.(\d+)/.exec(text)?.slice(1).map(Number) ?? null
const newer = (a: number[], b: number[]) => {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! > b[i]!
  return false
}
const reason = (err: unknown) => (err instanceof Error ? err.message : String(err))

async function databaseCheck(config: Readonly<Config>): Promise<Check> {
  const label = 'database'
  if (!config.databaseUrl) {
    const lock = join(config.dataDir, 'pglite', '.cc-broker.lock')
    const pid = Number((await readFile(lock, 'utf8').catch(() => '')).trim())
    if (pid > 0 && isAlive(pid))
      return {
        ok: true,
        label,
        detail: `embedded PGlite in ${config.dataDir}, open in broker pid ${pid}`,
      }
    // Looking must not make it: a broker creates the database at its first start.
    if (!(await stat(join(config.dataDir, 'pglite')).catch(() => null)))
      return {
        ok: true,
        label,
        detail: `embedded PGlite, made in ${config.dataDir} at the first start`,
      }
  }
  try {
    const db = await openDatabase({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      log: createLogger('silent'),
      migrate: false,
    })
    try {
      const pending = await pendingMigrations(db.db)
      const where = config.databaseUrl ? 'PostgreSQL' : `embedded PGlite in ${config.dataDir}`
      return pending.length === 0
        ? { ok: true, label, detail: `${where} reachable, migrations current` }
        : {
            ok: false,
            label,
            detail: `${where} reachable; migrations not applied: ${pending.join(', ')}`,
            hint: 'run `cc-broker migrate` (a starting broker applies them too)',
          }
    } finally {
      await db.close()
    }
  } catch (err) {
    return {
      ok: false,
      label,
      detail: `cannot open it: ${reason(err)}`,
      hint: config.databaseUrl
        ? 'is PostgreSQL running and CCBROKER_DATABASE_URL right?'
        : `is ${config.dataDir} writable?`,
    }
  }
}

async function claudeCheck(config: Readonly<Config>): Promise<Check> {
  const label = 'claude code'
  let path: string | null
  try {
    const found = await resolveClaudeBin(config.claudeBin)
    if (!found.path)
      return {
        ok: false,
        label,
        detail: 'not found on PATH',
        hint: 'install it, or set CCBROKER_CLAUDE_BIN',
      }
    path = found.path
  } catch (err) {
    return { ok: false, label, detail: reason(err), hint: 'fix CCBROKER_CLAUDE_BIN' }
  }
  const proc = Bun.spawn([path, '--version'], {
    stdout: 'pipe',
    stderr: 'pipe',
    env: { PATH: config.path },
  })
  const timer = setTimeout(() => proc.kill(), 15_000)
  const [code, text] = await Promise.all([proc.exited, new Response(proc.stdout).text()])
  clearTimeout(timer)
  const version = versionOf(text)
  if (code !== 0 || !version)
    return {
      ok: false,
      label,
      detail: `${path} --version failed (exit ${code})`,
      hint: 'reinstall it',
    }
  const shown = `${version.join('.')} at ${path}`
  if (config.workerTransport === 'ccr' && newer(version, CCR_NEWEST))
    return {
      ok: false,
      label,
      detail: `${shown}: the ccr transport needs 2.1.120 or older (newer ones refuse a loopback --sdk-url)`,
      hint: 'install @anthropic-ai/claude-code@2.1.120, or use CCBROKER_WORKER_TRANSPORT=stdio',
    }
  return { ok: true, label, detail: `${shown}, fits the ${config.workerTransport} transport` }
}

async function storeCheck(config: Readonly<Config>): Promise<Check> {
  const label = 'workspace store'
  if (config.workspaceStore === 'openviking') {
    const url = config.openVikingUrl!
    const found = await checkOpenViking({
      url,
      apiKey: config.openVikingApiKey ?? undefined,
      timeoutMs: 5_000,
    })
    return found.ok
      ? {
          ok: true,
          label,
          detail: `openviking v${found.version} at ${url} (v${minOpenVikingVersion} or newer needed)${found.role ? `, key role ${found.role}` : ''}`,
        }
      : {
          ok: false,
          label,
          detail: found.problem ?? `openviking at ${url} cannot be used`,
          hint: 'fix the server or CCBROKER_OPENVIKING_URL / CCBROKER_OPENVIKING_API_KEY',
        }
  }
  // The store's directory, or the nearest parent it would be made in, must be writable.
  let dir = config.workspaceDir
  while (
    !(await stat(dir).then(
      () => true,
      () => false,
    )) &&
    dirname(dir) !== dir
  )
    dir = dirname(dir)
  return access(dir, constants.W_OK).then(
    () => ({ ok: true, label, detail: `local directory ${config.workspaceDir}` }),
    () => ({
      ok: false,
      label,
      detail: `${dir} is not writable`,
      hint: 'fix its owner or mode, or set CCBROKER_WORKSPACE_DIR',
    }),
  )
}

/** A backend is reachable when it answers HTTP at all (any status). */
async function reachable(
  label: string,
  url: string | null,
  variable: string,
): Promise<Check | null> {
  if (!url) return null
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) })
    await res.body?.cancel()
    return { ok: true, label, detail: `${url} answers (${res.status})` }
  } catch (err) {
    return {
      ok: false,
      label,
      detail: `${url}: ${reason(err)}`,
      hint: `is it running? (${variable})`,
    }
  }
}

async function secretCheck(config: Readonly<Config>): Promise<Check> {
  const label = 'jwt secret'
  if (config.jwtSecret)
    return {
      ok: true,
      label,
      detail: `CCBROKER_JWT_SECRET, ${Buffer.byteLength(config.jwtSecret)} bytes`,
    }
  const path = join(config.dataDir, 'jwt-secret')
  const info = await stat(path).catch(() => null)
  if (!info) return { ok: true, label, detail: `generated into ${path} at the first start` }
  const secret = (await readFile(path, 'utf8').catch(() => '')).trim()
  if (Buffer.byteLength(secret) < 32)
    return {
      ok: false,
      label,
      detail: `${path} holds under 32 bytes`,
      hint: 'remove it; the broker makes a new one',
    }
  if (info.mode & 0o077)
    return {
      ok: false,
      label,
      detail: `${path} is readable by others (${(info.mode & 0o777).toString(8)})`,
      hint: `chmod 600 ${path}`,
    }
  return { ok: true, label, detail: `${path}, ${Buffer.byteLength(secret)} bytes, mode 600` }
}

async function dataDirCheck(config: Readonly<Config>): Promise<Check> {
  const label = 'data dir'
  const info = await stat(config.dataDir).catch(() => null)
  if (!info) return { ok: true, label, detail: `${config.dataDir} (made 700 at the first start)` }
  if (!info.isDirectory())
    return { ok: false, label, detail: `${config.dataDir} is not a directory` }
  if (info.mode & 0o077)
    return {
      ok: false,
      label,
      detail: `${config.dataDir} is open to others (${(info.mode & 0o777).toString(8)})`,
      hint: `chmod 700 ${config.dataDir} (a starting broker does)`,
    }
  return { ok: true, label, detail: `${config.dataDir}, mode 700` }
}

function exposureCheck(config: Readonly<Config>): Check {
  const label = 'exposure'
  if (config.apiKeys.length > 0)
    return { ok: true, label, detail: `${config.host}, ${config.apiKeys.length} API key(s)` }
  if (isLoopbackHost(config.host))
    return { ok: true, label, detail: `${config.host} only, no API keys` }
  return {
    ok: false,
    label,
    detail: `${config.host} without API keys (CCBROKER_ALLOW_NO_AUTH): anyone who reaches it can run turns`,
    hint: 'set CCBROKER_API_KEYS',
  }
}

/** Every check of a configuration, in the order shown. */
export async function runChecks(env: Record<string, string | undefined>): Promise<Check[]> {
  let config: Readonly<Config>
  try {
    config = loadConfig(env)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    return [{ ok: false, label: 'configuration', detail: err.message, hint: 'fix the variable' }]
  }
  const checks: (Check | null)[] = [
    { ok: true, label: 'configuration', detail: 'loads' },
    await databaseCheck(config),
    await claudeCheck(config),
    await storeCheck(config),
    await reachable(
      'executor registry',
      config.executorRegistryUrl,
      'CCBROKER_EXECUTOR_REGISTRY_URL',
    ),
    await reachable('im bridge', config.imBridgeUrl, 'CCBROKER_IMBRIDGE_URL'),
    await secretCheck(config),
    await dataDirCheck(config),
    exposureCheck(config),
  ]
  return checks.filter((c): c is Check => c !== null)
}

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'Check the configuration and everything the broker depends on',
  help: `Usage: cc-broker doctor

Checks, one line each, with the same CCBROKER_* environment a broker would read: the database
and its migrations, Claude Code and whether it fits the transport, the workspace store, the
executor registry and IM bridge when configured, the JWT secret, the data dir's permissions and
the bind address against the API keys. Exits 1 when any check fails.`,
  options: {},
  async run(_, io) {
    const checks = await runChecks(io.env)
    for (const c of checks) {
      io.out(`${c.ok ? '✓' : '✗'} ${c.label}: ${c.detail}\n`)
      if (!c.ok && c.hint) io.out(`    ${c.hint}\n`)
    }
    return checks.every((c) => c.ok) ? 0 : 1
  },
}
