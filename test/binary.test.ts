import { beforeAll, describe, expect, test } from 'bun:test'
import { existsSync } from 'node:fs'
import { copyFile, readdir } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import pkg from '../package.json' with { type: 'json' }
import { chromiumBin, launchBrowser } from './helpers/browser.ts'
import { TEST_SECRET } from './helpers/broker.ts'
import { runCli } from './helpers/cli.ts'
import { databases } from './helpers/databases.ts'
import { lineReader } from './helpers/lines.ts'
import { tempDir } from './helpers/temp-dir.ts'
import { scenarioClaudeBin } from './helpers/turns.ts'

const ROOT = resolve(import.meta.dir, '..')
const BINARY = join(ROOT, 'dist/cc-broker')
const chromium = chromiumBin()

/** The compiled broker, started in `cwd` with only `env` (plus PATH and HOME). */
async function startBinary(cwd: string, env: Record<string, string>) {
  const proc = Bun.spawn([join(cwd, 'cc-broker')], {
    cwd,
    env: { PATH: '/usr/bin:/bin', HOME: cwd, CCBROKER_PORT: '0', ...env },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const stderr = lineReader(proc.stderr)
  const stdout = lineReader(proc.stdout)
  const listening = JSON.parse(await stderr.until((l) => l.includes('"broker listening"')))
  const url: string = listening.url
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(url + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    return { status: res.status, body: (await res.json()) as any }
  }
  return {
    proc,
    url,
    listening,
    api,
    /** SIGTERM, then the exit code and everything the process wrote. */
    async stop() {
      proc.kill('SIGTERM')
      const [exitCode] = await Promise.all([proc.exited, stderr.done, stdout.done])
      return { exitCode, stderr: stderr.lines, stdout: stdout.lines }
    },
    [Symbol.asyncDispose]: async () => {
      proc.kill('SIGKILL')
      await proc.exited
    },
  }
}

describe('the compiled binary', () => {
  beforeAll(async () => {
    // `bun run build` calls `bun` by name: the one running the tests is put first on PATH.
    await using build = Bun.spawn([process.execPath, 'run', 'build'], {
      cwd: ROOT,
      env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const [stdout, stderr, exitCode] = await Promise.all([
      new Response(build.stdout).text(),
      new Response(build.stderr).text(),
      build.exited,
    ])
    if (exitCode !== 0) throw new Error(`bun run build exited ${exitCode}:\n${stdout}\n${stderr}`)
  })

  test('copied alone into an empty directory, it starts on embedded PGlite in ./data, serves, and stops on SIGTERM with 0', async () => {
    await using dir = await tempDir()
    await copyFile(BINARY, join(dir.path, 'cc-broker'))
    let sessionId: string
    {
      await using broker = await startBinary(dir.path, {})
      expect(broker.listening).toMatchObject({ level: 'info', database: 'pglite' })
      expect(await broker.api('GET', '/healthz')).toEqual({ status: 200, body: { status: 'ok' } })
      // The console and its bundled script come out of the binary itself.
      const page = await fetch(`${broker.url}/console`)
      expect(page.status).toBe(200)
      expect(page.headers.get('content-security-policy')).toStartWith("default-src 'none'")
      expect(await page.text()).toContain('<script type="module" src="/console/console.js">')
      const script = await fetch(`${broker.url}/console/console.js`)
      expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
      expect(await script.text()).toContain('/v1/overview/sessions')
      const css = await fetch(`${broker.url}/console/console.css`)
      expect([css.status, (await css.text()).length > 1000]).toEqual([200, true])
      if (chromium) {
        // And the script runs: the page draws its login form.
        await using browser = await launchBrowser(chromium)
        const tab = await browser.newPage()
        await tab.goto(`${broker.url}/console`)
        await tab.getByLabel('API key').waitFor()
        expect(await tab.getByRole('button', { name: 'Log in' }).count()).toBe(1)
      }
      const created = await broker.api('POST', '/v1/sessions', { workspace_id: 'ws-bin' })
      expect(created.status).toBe(201)
      sessionId = created.body.session.id
      const stopped = await broker.stop()
      expect(stopped.exitCode).toBe(0)
      expect(stopped.stdout).toEqual([])
    }
    expect((await readdir(dir.path)).sort()).toEqual(['cc-broker', 'data'])
    expect((await readdir(join(dir.path, 'data'))).sort()).toEqual(
      expect.arrayContaining(['jwt-secret', 'pglite']),
    )

    // A restart finds the session again. A .env in the directory is not read (the build passes
    // --no-compile-autoload-dotenv): if it were, the silent log level would hide the listening line.
    await Bun.write(join(dir.path, '.env'), 'CCBROKER_LOG_LEVEL=silent\n')
    await using again = await startBinary(dir.path, {})
    expect(await again.api('GET', `/v1/sessions/${sessionId}`)).toEqual({
      status: 200,
      body: { session: expect.objectContaining({ id: sessionId, workspace_id: 'ws-bin' }) },
    })
    expect((await again.stop()).exitCode).toBe(0)
  })

  test('its CLI: --help, version, an unknown command, doctor, and a turn against the binary broker', async () => {
    await using dir = await tempDir()
    const bin = join(dir.path, 'cc-broker')
    await copyFile(BINARY, bin)
    const help = await runCli(['--help'], { bin, cwd: dir.path })
    expect(help.exitCode).toBe(0)
    expect(help.stdout).toContain('Usage: cc-broker [command] [options]')
    expect((await runCli(['version'], { bin })).stdout).toStartWith(`cc-broker ${pkg.version} (`)
    expect((await runCli(['nope'], { bin })).exitCode).toBe(2)
    expect(await readdir(dir.path)).toEqual(['cc-broker'])

    const env = {
      CCBROKER_CLAUDE_BIN: await scenarioClaudeBin(dir.path),
      CCBROKER_WORKER_ENV: JSON.stringify({ FAKE_CLAUDE_SCENARIO: 'echo' }),
    }
    await using broker = await startBinary(dir.path, env)
    const turn = await runCli(
      ['turn', '--url', broker.url, '--session', 's-bin', 'hi from the binary'],
      { bin },
    )
    expect(turn.stdout.split('\n').slice(0, 2)).toEqual([
      '› hi from the binary',
      'echo: hi from the binary',
    ])
    expect(turn.exitCode).toBe(0)
    // doctor reads the running broker's data dir: PGlite is in use by it, and all is well.
    const doctor = await runCli(['doctor'], {
      bin,
      cwd: dir.path,
      env: { ...env, CCBROKER_DATA_DIR: join(dir.path, 'data') },
    })
    expect(doctor.stdout).toContain(`open in broker pid ${broker.proc.pid}`)
    expect(doctor.stdout).not.toContain('✗')
    expect(doctor.exitCode).toBe(0)
    expect((await broker.stop()).exitCode).toBe(0)
  })

  const postgresKind = databases().find((d) => d.name === 'postgres')
  if (!postgresKind)
    console.log('skip: the binary on Postgres (set CCBROKER_TEST_DATABASE_URL to run it)')

  test.skipIf(!postgresKind)(
    'with CCBROKER_DATABASE_URL it migrates an empty Postgres database and serves',
    async () => {
      await using dir = await tempDir()
      await copyFile(BINARY, join(dir.path, 'cc-broker'))
      const database = await postgresKind!.create()
      try {
        await using broker = await startBinary(dir.path, {
          CCBROKER_DATABASE_URL: database.url!,
          CCBROKER_JWT_SECRET: TEST_SECRET,
        })
        expect(broker.listening).toMatchObject({ level: 'info', database: 'postgres' })
        expect(await broker.api('GET', '/healthz')).toEqual({ status: 200, body: { status: 'ok' } })
        const created = await broker.api('POST', '/v1/sessions', { workspace_id: 'ws-bin-pg' })
        expect(created.status).toBe(201)
        const bridged = await broker.api('POST', `/v1/sessions/${created.body.session.id}/bridge`)
        expect(bridged).toEqual({
          status: 200,
          body: {
            worker_jwt: expect.any(String),
            api_base_url: `${broker.url}/v1/sessions/${created.body.session.id}`,
            expires_in: 86400,
            worker_epoch: 1,
          },
        })
        expect((await broker.stop()).exitCode).toBe(0)
        expect(existsSync(join(dir.path, 'data', 'pglite'))).toBe(false)
      } finally {
        await database.drop()
      }
    },
  )
})
