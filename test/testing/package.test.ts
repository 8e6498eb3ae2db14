import { expect, test } from 'bun:test'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const ROOT = resolve(import.meta.dir, '../..')

/** The README's "Testing your integration" example, as a user would paste it. */
async function readmeExample(): Promise<string> {
  const readme = await Bun.file(join(ROOT, 'README.md')).text()
  const section = readme.split(/^## Testing your integration$/m)[1]?.split(/^## /m)[0] ?? ''
  const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1]
  if (!code) throw new Error('README: no ```ts block under "## Testing your integration"')
  return code
}

const run = async (cmd: string[], cwd: string) => {
  const proc = Bun.spawn(cmd, {
    cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: cwd },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ])
  return { exitCode, output: stdout + stderr }
}

test('a project outside the repository depends on the checkout by path and runs the README’s example with bun test', async () => {
  const npm = Bun.which('npm')
  expect(npm).not.toBeNull()
  const dir = await mkdtemp(join(tmpdir(), 'cc-broker-user-'))
  try {
    await writeFile(
      join(dir, 'package.json'),
      JSON.stringify({
        name: 'my-bot',
        private: true,
        type: 'module',
        dependencies: { 'cc-broker': `file:${ROOT}` },
      }),
    )
    const install = await run([npm!, 'install', '--no-audit', '--no-fund', '--offline'], dir)
    expect(install.output).not.toContain('ERR!')
    expect(install.exitCode).toBe(0)
    await writeFile(join(dir, 'bot.test.ts'), await readmeExample())
    // Every entry point resolves from the installed package.
    await writeFile(
      join(dir, 'entries.test.ts'),
      [
        "import { expect, test } from 'bun:test'",
        "import { startBroker, loadConfig, VERSION } from 'cc-broker'",
        "import { createClient, BrokerApiError } from 'cc-broker/client'",
        "import { startTestBroker, startFakeAnthropic, startFakeExecutorRegistry, startFakeImBridge } from 'cc-broker/testing'",
        "test('entries', () => {",
        '  for (const f of [startBroker, loadConfig, createClient, startTestBroker, startFakeAnthropic, startFakeExecutorRegistry, startFakeImBridge])',
        "    expect(typeof f).toBe('function')",
        "  expect(new BrokerApiError(404, 'x', null).status).toBe(404)",
        `  expect(VERSION).toBe(${JSON.stringify((await Bun.file(join(ROOT, 'package.json')).json()).version)})`,
        '})',
        '',
      ].join('\n'),
    )
    const tested = await run([process.execPath, 'test', '--timeout', '60000'], dir)
    expect(tested.output).toMatch(/\b2 pass\b/)
    expect(tested.output).toMatch(/\b0 fail\b/)
    expect(tested.exitCode).toBe(0)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
