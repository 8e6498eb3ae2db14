import { describe, expect, test } from 'bun:test'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import pkg from '../../package.json' with { type: 'json' }
import { TEST_SECRET } from '../helpers/broker.ts'
import { freePort, spawnBroker } from '../helpers/broker-process.ts'
import { runCli, spawnCli } from '../helpers/cli.ts'
import { databases } from '../helpers/databases.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { newSessionId, scenarioClaudeBin, startTurnBroker } from '../helpers/turns.ts'

const COMMANDS = ['serve', 'migrate', 'doctor', 'turn', 'sessions', 'events', 'version']

describe('cc-broker commands', () => {
  test('--help lists every command and starts nothing: no broker, no ./data', async () => {
    await using dir = await tempDir()
    for (const flag of ['--help', '-h', 'help']) {
      const run = await runCli([flag], { cwd: dir.path })
      expect(run.exitCode).toBe(0)
      expect(run.stdout).toStartWith(`cc-broker ${pkg.version}`)
      for (const name of COMMANDS) expect(run.stdout).toMatch(new RegExp(`^  ${name} +\\S`, 'm'))
    }
    expect(await readdir(dir.path)).toEqual([])
  })

  test.each(COMMANDS)('%s --help shows its usage and exits 0', async (name) => {
    await using dir = await tempDir()
    const run = await runCli([name, '--help'], { cwd: dir.path })
    expect(run).toMatchObject({ exitCode: 0, stderr: '' })
    expect(run.stdout).toContain(`Usage: cc-broker ${name === 'serve' ? '[serve]' : name}`)
    expect(await readdir(dir.path)).toEqual([])
  })

  test('an unknown command or option is a usage error, exit 2, naming it and --help', async () => {
    await using dir = await tempDir()
    const unknown = await runCli(['frobnicate'], { cwd: dir.path })
    expect(unknown).toMatchObject({ exitCode: 2, stdout: '' })
    expect(unknown.stderr).toBe(
      'cc-broker: unknown command "frobnicate"; run cc-broker --help for the list\n',
    )
    const option = await runCli(['sessions', '--bogus'], { cwd: dir.path })
    expect(option.exitCode).toBe(2)
    expect(option.stderr).toContain("Unknown option '--bogus'")
    expect(option.stderr).toContain('run cc-broker sessions --help')
    // An option with no command is serve's, and serve takes none: nothing starts.
    const serveOption = await runCli(['--port', '1'], { cwd: dir.path })
    expect(serveOption.exitCode).toBe(2)
    expect(await readdir(dir.path)).toEqual([])
  })

  test('version and --version print the package version', async () => {
    for (const args of [['version'], ['--version'], ['-v']]) {
      const run = await runCli(args)
      expect(run.exitCode).toBe(0)
      expect(run.stdout).toMatch(
        new RegExp(`^cc-broker ${pkg.version.replaceAll('.', '\\.')} \\(bun `),
      )
    }
  })

  test('a bad configuration is named with its variable, exit 1', async () => {
    const run = await runCli(['migrate'], { env: { CCBROKER_PORT: 'eighty' } })
    expect(run.exitCode).toBe(1)
    expect(run.stderr).toContain('CCBROKER_PORT')
  })

  for (const db of databases())
    test(`migrate --dry-run lists what migrate then applies, on ${db.name}`, async () => {
      await using dir = await tempDir()
      const database = await db.create()
      try {
        const env = {
          CCBROKER_DATA_DIR: join(dir.path, 'data'),
          ...(database.url
            ? { CCBROKER_DATABASE_URL: database.url, CCBROKER_JWT_SECRET: TEST_SECRET }
            : {}),
        }
        const dry = await runCli(['migrate', '--dry-run'], { env })
        expect(dry.exitCode).toBe(0)
        const listed = /^would apply to .*: (.+)$/.exec(dry.stdout.trim())?.[1]?.split(', ')
        expect(listed?.[0]).toStartWith('0000_')
        // Dry means dry: a second look finds the same list.
        expect((await runCli(['migrate', '--dry-run'], { env })).stdout).toBe(dry.stdout)
        const applied = await runCli(['migrate'], { env })
        expect(applied.exitCode).toBe(0)
        expect(applied.stdout.trim()).toEndWith(`: ${listed!.join(', ')}`)
        const again = await runCli(['migrate'], { env })
        expect(again.stdout).toMatch(/is up to date\n$/)
      } finally {
        await database.drop()
      }
    })

  test('sessions lists the sessions as a table, or as JSON lines', async () => {
    await using b = await startTurnBroker({
      db: databases()[0]!,
      transport: 'stdio',
      workerEnv: { FAKE_CLAUDE_SCENARIO: 'echo' },
    })
    const ids: string[] = []
    for (const title of ['first', 'second']) {
      const made = await b.api('POST', '/v1/sessions', { workspace_id: 'ws-list', title })
      expect(made.status).toBe(201)
      ids.push(made.body.session.id)
    }
    const table = await runCli(['sessions', '--url', b.url, '--workspace', 'ws-list'])
    expect(table.exitCode).toBe(0)
    const rows = table.stdout.trim().split('\n')
    expect(rows[0]).toMatch(/^ID +WORKSPACE +STATUS +CREATED +TITLE$/)
    expect(
      rows
        .slice(1)
        .map((r) => r.split(/ +/)[0])
        .sort(),
    ).toEqual([...ids].sort())
    const json = await runCli(['sessions', '--url', b.url, '--json', '-n', '1'])
    const lines = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(lines).toHaveLength(1)
    expect(ids).toContain(lines[0].id)
    expect((await runCli(['sessions', '--url', b.url, '--limit', '0'])).exitCode).toBe(2)
  })

  test('events shows a session as turn does; --follow goes on across a broker restart without a gap or a repeat', async () => {
    await using dir = await tempDir()
    const port = freePort()
    const env = {
      PATH: process.env.PATH!,
      CCBROKER_PORT: String(port),
      CCBROKER_DATA_DIR: join(dir.path, 'data'),
      CCBROKER_CLAUDE_BIN: await scenarioClaudeBin(dir.path),
      CCBROKER_WORKER_ENV: JSON.stringify({ FAKE_CLAUDE_SCENARIO: 'echo' }),
      CCBROKER_LOG_LEVEL: 'info',
    }
    const url = `http://127.0.0.1:${port}`
    const sessionId = newSessionId()
    const runTurn = (text: string) => runCli(['turn', '--url', url, '--session', sessionId, text])

    const first = await spawnBroker(env)
    expect((await runTurn('one')).exitCode).toBe(0)
    const shown = await runCli(['events', '--url', url, sessionId])
    expect(shown.exitCode).toBe(0)
    expect(shown.stdout.split('\n').slice(0, 2)).toEqual(['› one', 'echo: one'])
    expect(shown.stdout.trim().split('\n').at(-1)).toMatch(/^✓ done in /)

    await using follower = spawnCli(['events', '--follow', '--json', '--url', url, sessionId])
    const doneLines = () => follower.stdout.lines.filter((l) => JSON.parse(l).event_type === 'done')
    await follower.stdout.until((l) => JSON.parse(l).event_type === 'done')
    expect(await first.stop()).toBe(0)
    await using second = await spawnBroker(env)
    expect((await runTurn('two')).exitCode).toBe(0)
    await follower.stdout.until(() => doneLines().length === 2)
    follower.proc.kill('SIGINT')
    const run = await follower.finished()
    expect(run.exitCode).toBe(0)
    const events = follower.stdout.lines.map((l) => JSON.parse(l))
    const seqs = events.map((e) => e.sequence_num)
    expect(seqs).toEqual([...new Set(seqs)].sort((a, b) => a - b))
    // Every kept event, once, in order (the partial frames seen live are not kept).
    const kept = await second.api('GET', `/v1/sessions/${sessionId}/events?limit=1000`)
    expect(events.filter((e) => !e.ephemeral).map((e) => e.sequence_num)).toEqual(
      kept.body.data.map((e: any) => e.sequence_num),
    )
    expect(
      events
        .filter((e) => e.event_type === 'user' && e.source === 'client')
        .map((e) => e.payload.message.content),
    ).toEqual(['one', 'two'])
  })
})
