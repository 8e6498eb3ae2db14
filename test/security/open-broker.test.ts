import { describe, expect, test } from 'bun:test'
import { join, resolve } from 'node:path'
import { freePort, spawnBroker } from '../helpers/broker-process.ts'
import { tempDir } from '../helpers/temp-dir.ts'

const ROOT = resolve(import.meta.dir, '../..')

describe('no open broker by accident', () => {
  test('a non-loopback address without API keys refuses to start, naming CCBROKER_API_KEYS', async () => {
    await using dir = await tempDir('ccb-open-')
    const proc = Bun.spawn([process.execPath, '--no-env-file', 'src/main.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        CCBROKER_HOST: '0.0.0.0',
        CCBROKER_PORT: String(freePort()),
        CCBROKER_DATA_DIR: join(dir.path, 'data'),
      },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()])
    expect(code).toBe(1)
    const record = JSON.parse(stderr.trim().split('\n').at(-1)!)
    expect(record).toEqual(
      expect.objectContaining({
        level: 'error',
        msg:
          'invalid configuration: CCBROKER_API_KEYS: required when listening on 0.0.0.0, which ' +
          'is not a loopback address: anyone who reaches it could run agent turns. Set ' +
          'CCBROKER_API_KEYS, listen on 127.0.0.1, or set CCBROKER_ALLOW_NO_AUTH=true if the ' +
          'network itself is trusted',
      }),
    )
  })

  test('CCBROKER_ALLOW_NO_AUTH=true starts it with a warning; bridges never answer a 0.0.0.0 api_base_url', async () => {
    await using dir = await tempDir('ccb-open-')
    await using broker = await spawnBroker({
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      CCBROKER_HOST: '0.0.0.0',
      CCBROKER_ALLOW_NO_AUTH: 'true',
      CCBROKER_PORT: String(freePort()),
      CCBROKER_DATA_DIR: join(dir.path, 'data'),
    })
    const warnings = broker
      .logs()
      .filter((r) => r.level === 'warn')
      .map((r) => r.msg)
    expect(warnings).toContain(
      'serving without API keys on a non-loopback address (CCBROKER_ALLOW_NO_AUTH)',
    )
    expect(warnings).toContain('set CCBROKER_PUBLIC_URL: bridges answer a loopback api_base_url')
    const port = new URL(broker.url).port
    const local = `http://127.0.0.1:${port}`
    const created = await fetch(`${local}/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ workspace_id: 'ws-open' }),
    })
    const { session } = (await created.json()) as { session: { id: string } }
    const bridge = await fetch(`${local}/v1/sessions/${session.id}/bridge`, { method: 'POST' })
    expect(((await bridge.json()) as { api_base_url: string }).api_base_url).toBe(
      `${local}/v1/sessions/${session.id}`,
    )
  })
})
