import { describe, expect, test } from 'bun:test'
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TEST_SECRET } from '../helpers/broker.ts'
import { freePort } from '../helpers/broker-process.ts'
import { claudeBin } from '../helpers/claude-bin.ts'
import { runCli } from '../helpers/cli.ts'
import { databases } from '../helpers/databases.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { createFakeOpenViking } from '../fakes/openviking.ts'
import { minOpenVikingVersion } from '../../src/workspace/openviking-health.ts'
import { scenarioClaudeBin } from '../helpers/turns.ts'

/** The checks doctor printed: label → mark and the rest of the line. */
const checksOf = (stdout: string) =>
  Object.fromEntries(
    stdout
      .split('\n')
      .filter((l) => /^[✓✗] /.test(l))
      .map((l) => {
        const [, mark, label, detail] = /^([✓✗]) ([^:]+): (.*)$/.exec(l)!
        return [label, { ok: mark === '✓', detail }]
      }),
  ) as Record<string, { ok: boolean; detail: string }>

/** A stand-in `claude` that only answers --version, as `version`. */
async function versionOnlyClaude(dir: string, version: string) {
  const path = join(dir, `claude-${version}`)
  await writeFile(path, `#!/bin/sh\necho "${version} (Claude Code)"\n`)
  await chmod(path, 0o755)
  return path
}

describe('cc-broker doctor', () => {
  test('fails, one ✗ line and a hint each, for unreachable Postgres and missing Claude Code', async () => {
    await using dir = await tempDir()
    const run = await runCli(['doctor'], {
      env: {
        CCBROKER_DATABASE_URL: `postgres://postgres@127.0.0.1:${freePort()}/nothing`,
        CCBROKER_JWT_SECRET: TEST_SECRET,
        CCBROKER_DATA_DIR: join(dir.path, 'data'),
        CCBROKER_CLAUDE_BIN: join(dir.path, 'no-such-claude'),
      },
    })
    expect(run.exitCode).toBe(1)
    const checks = checksOf(run.stdout)
    expect(checks.database).toMatchObject({
      ok: false,
      detail: expect.stringContaining('cannot open it'),
    })
    expect(checks['claude code']?.ok).toBe(false)
    expect(run.stdout).toContain('is PostgreSQL running and CCBROKER_DATABASE_URL right?')
    expect(run.stdout).toContain('fix CCBROKER_CLAUDE_BIN')
    expect(checks.configuration?.ok).toBe(true)
  })

  test('a Claude Code too new for the ccr transport, a data dir open to others, and a public bind without keys each fail', async () => {
    await using dir = await tempDir()
    const dataDir = join(dir.path, 'data')
    await mkdir(dataDir, { mode: 0o755 })
    await chmod(dataDir, 0o755)
    const run = await runCli(['doctor'], {
      env: {
        CCBROKER_DATA_DIR: dataDir,
        CCBROKER_WORKER_TRANSPORT: 'ccr',
        CCBROKER_CLAUDE_BIN: await versionOnlyClaude(dir.path, '2.1.332'),
        CCBROKER_HOST: '0.0.0.0',
        CCBROKER_ALLOW_NO_AUTH: '1',
      },
    })
    expect(run.exitCode).toBe(1)
    const checks = checksOf(run.stdout)
    expect(checks['claude code']).toEqual({
      ok: false,
      detail: expect.stringContaining('2.1.332 at'),
    })
    expect(run.stdout).toContain('the ccr transport needs 2.1.120 or older')
    expect(checks['data dir']).toMatchObject({
      ok: false,
      detail: expect.stringContaining('(755)'),
    })
    expect(checks.exposure).toMatchObject({
      ok: false,
      detail: expect.stringContaining('0.0.0.0 without API keys'),
    })
    // Looking made nothing: no database in the data dir.
    expect(checks.database?.detail).toContain('at the first start')
  })

  test('an invalid configuration is the one failed check', async () => {
    const run = await runCli(['doctor'], { env: { CCBROKER_WORKER_TRANSPORT: 'pigeon' } })
    expect(run.exitCode).toBe(1)
    expect(run.stdout).toMatch(/^✗ configuration: .*CCBROKER_WORKER_TRANSPORT/)
  })

  for (const db of databases())
    test(`passes on a migrated ${db.name} database with Claude Code that fits`, async () => {
      await using dir = await tempDir()
      const database = await db.create()
      try {
        const claude = claudeBin('stdio') ?? (await scenarioClaudeBin(dir.path))
        const env = {
          CCBROKER_DATA_DIR: join(dir.path, 'data'),
          CCBROKER_CLAUDE_BIN: claude,
          CCBROKER_JWT_SECRET: TEST_SECRET,
          ...(database.url ? { CCBROKER_DATABASE_URL: database.url } : {}),
        }
        // Not yet migrated: doctor says so and how to fix it.
        if (database.url) {
          const before = await runCli(['doctor'], { env })
          expect(before.exitCode).toBe(1)
          expect(checksOf(before.stdout).database?.detail).toContain(
            'migrations not applied: 0000_',
          )
          expect(before.stdout).toContain('run `cc-broker migrate`')
        }
        expect((await runCli(['migrate'], { env })).exitCode).toBe(0)
        const run = await runCli(['doctor'], { env })
        expect(run.stderr).toBe('')
        const checks = checksOf(run.stdout)
        expect(Object.entries(checks).filter(([, c]) => !c.ok)).toEqual([])
        expect(Object.keys(checks)).toEqual([
          'configuration',
          'database',
          'claude code',
          'workspace store',
          'jwt secret',
          'data dir',
          'exposure',
        ])
        expect(checks.database?.detail).toContain('migrations current')
        expect(checks['claude code']?.detail).toMatch(
          /^\d+\.\d+\.\d+ at .*, fits the stdio transport$/,
        )
        expect(run.exitCode).toBe(0)
      } finally {
        await database.drop()
      }
    })

  test('a configured executor registry or IM bridge that does not answer fails', async () => {
    await using dir = await tempDir()
    const run = await runCli(['doctor'], {
      env: {
        CCBROKER_DATA_DIR: join(dir.path, 'data'),
        CCBROKER_CLAUDE_BIN: await versionOnlyClaude(dir.path, '2.1.332'),
        CCBROKER_EXECUTOR_REGISTRY_URL: `http://127.0.0.1:${freePort()}`,
        CCBROKER_IMBRIDGE_URL: `http://127.0.0.1:${freePort()}`,
        CCBROKER_IMBRIDGE_SECRET: 'bridge-secret-0123456789',
      },
    })
    expect(run.exitCode).toBe(1)
    const checks = checksOf(run.stdout)
    expect(checks['executor registry']?.ok).toBe(false)
    expect(checks['im bridge']?.ok).toBe(false)
    expect(run.stdout).toContain('CCBROKER_EXECUTOR_REGISTRY_URL')
  })
})

describe('cc-broker doctor on OpenViking', () => {
  const KEY = 'ov-user-key-0123456789'
  const env = async (dir: string, url: string) => ({
    CCBROKER_DATA_DIR: join(dir, 'data'),
    CCBROKER_CLAUDE_BIN: await versionOnlyClaude(dir, '2.1.332'),
    CCBROKER_WORKSPACE_STORE: 'openviking',
    CCBROKER_OPENVIKING_URL: url,
    CCBROKER_OPENVIKING_API_KEY: KEY,
  })

  test('a server older than the supported minimum fails, naming both versions', async () => {
    await using dir = await tempDir()
    await using ov = createFakeOpenViking({ version: '0.4.15', apiKey: KEY })
    const run = await runCli(['doctor'], { env: await env(dir.path, ov.url) })
    expect(run.exitCode).toBe(1)
    expect(checksOf(run.stdout)['workspace store']).toEqual({
      ok: false,
      detail: expect.stringContaining(`runs v0.4.15; cc-broker needs v${minOpenVikingVersion}`),
    })
  })

  test('a supported server with a user key passes, showing its version', async () => {
    await using dir = await tempDir()
    await using ov = createFakeOpenViking({ version: minOpenVikingVersion, apiKey: KEY })
    const run = await runCli(['doctor'], { env: await env(dir.path, ov.url) })
    expect(checksOf(run.stdout)['workspace store']).toEqual({
      ok: true,
      detail: expect.stringContaining(`openviking v${minOpenVikingVersion} at ${ov.url}`),
    })
    expect(run.exitCode).toBe(0)
  })
})
