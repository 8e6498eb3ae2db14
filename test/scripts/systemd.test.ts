import { describe, expect, test } from 'bun:test'
import { chmod, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { tempDir } from '../helpers/temp-dir.ts'

const UNIT = resolve(import.meta.dir, '../../scripts/systemd/cc-broker.service')
const ANALYZE = Bun.which('systemd-analyze')
if (!ANALYZE) console.log('skip: the systemd unit check (systemd-analyze is not installed)')

/** Directives of the unit's [Service] section, by name (the last value wins, as in systemd). */
async function serviceSection() {
  const text = await readFile(UNIT, 'utf8')
  const section = text.split(/^\[Service\]$/m)[1]!.split(/^\[/m)[0]!
  return Object.fromEntries(
    section
      .split('\n')
      .filter((l) => /^[A-Za-z]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  )
}

describe('the systemd unit', () => {
  test.skipIf(!ANALYZE)(
    'is clean under systemd-analyze verify, with a low exposure score',
    async () => {
      // verify checks that ExecStart exists: the same unit, pointed at an executable in a temp dir.
      await using dir = await tempDir()
      const exe = join(dir.path, 'cc-broker')
      await writeFile(exe, '#!/bin/sh\n')
      await chmod(exe, 0o755)
      const unit = join(dir.path, 'cc-broker.service')
      await writeFile(
        unit,
        (await readFile(UNIT, 'utf8')).replaceAll('/usr/local/bin/cc-broker', exe),
      )
      const verify = Bun.spawnSync([ANALYZE!, 'verify', unit], { stderr: 'pipe', stdout: 'pipe' })
      expect(verify.stderr.toString()).toBe('')
      expect(verify.exitCode).toBe(0)
      const security = Bun.spawnSync([ANALYZE!, 'security', '--offline=yes', unit], {
        stderr: 'pipe',
        stdout: 'pipe',
      })
      const score = /Overall exposure level for cc-broker\.service: ([\d.]+)/.exec(
        security.stdout.toString(),
      )
      expect(Number(score?.[1])).toBeLessThan(5)
    },
  )

  test('runs as its own user with state, environment file, restarts and a stop timeout above the broker’s', async () => {
    const s = await serviceSection()
    expect(s).toMatchObject({
      User: 'cc-broker',
      DynamicUser: 'yes',
      StateDirectory: 'cc-broker',
      EnvironmentFile: '-/etc/cc-broker/env',
      Restart: 'on-failure',
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      ReadWritePaths: '%S/cc-broker',
      ExecStart: '/usr/local/bin/cc-broker serve',
      // Only the broker gets SIGTERM: it hands its workers' turns back before they go.
      KillMode: 'mixed',
    })
    // Worst case of a stop: three 5 s steps for the workers and a 10 s hand-back wait.
    expect(Number(s.TimeoutStopSec)).toBeGreaterThan(3 * 5 + 10)
    const env = (await readFile(UNIT, 'utf8')).match(/^Environment=.*$/gm) ?? []
    expect(env).toContain('Environment=CCBROKER_DATA_DIR=%S/cc-broker')
    expect(env).toContain('Environment=HOME=%S/cc-broker/home')
  })
})
