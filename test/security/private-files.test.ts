import { describe, expect, test } from 'bun:test'
import { lstat, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { spawnBroker } from '../helpers/broker-process.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { newSessionId, scenario, scenarioClaudeBin } from '../helpers/turns.ts'
import { until } from '../helpers/until.ts'
import { startWorkerControl } from '../../src/testing/worker-control.ts'

/** Every entry below `dir` with its permission bits, `dir` itself included. */
async function modes(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const walk = async (path: string, rel: string) => {
    const info = await lstat(path)
    out[rel || '.'] = (info.mode & 0o777).toString(8)
    if (info.isDirectory())
      for (const name of await readdir(path))
        await walk(join(path, name), rel ? `${rel}/${name}` : name)
  }
  await walk(dir, '')
  return out
}

describe('files are private', () => {
  test('the data dir, the PGlite cluster, the JWT secret, run dirs, workspaces and transcripts are 700/600', async () => {
    await using dir = await tempDir('ccb-private-')
    await using control = await startWorkerControl()
    const data = join(dir.path, 'data')
    await using broker = await spawnBroker({
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir.path,
      CCBROKER_PORT: '0',
      CCBROKER_DATA_DIR: data,
      CCBROKER_CLAUDE_BIN: await scenarioClaudeBin(dir.path),
      CCBROKER_WORKER_ENV: `FAKE_CLAUDE_CONTROL_URL=${control.url}`,
    })
    const sessionId = newSessionId('private')
    const held = control.hold(sessionId)
    const res = await broker.api('POST', '/api/v2/turns', {
      session_id: sessionId,
      workspace_id: 'ws-private',
      user_message: 'keep it to yourself',
      metadata: scenario('control'),
    })
    expect(res.status).toBe(202)
    // Mid-turn, the worker's run directory exists.
    await held.arrived
    const run = await modes(join(data, 'run'))
    held.release()
    await until(
      async () =>
        (await broker.api('GET', `/api/turns/${res.body.turn_id}`)).body.turn.state === 'done',
    )
    const files = await modes(data)
    // Nothing under the data dir (run dirs seen mid-turn included) is readable by others.
    for (const [path, mode] of Object.entries({ ...files, ...run }))
      expect({ path, mode }).toEqual({ path, mode: expect.stringMatching(/^[67]00$/) })
    // What must be there is: the cluster, the secret, and the stored transcript.
    expect(files['.']).toBe('700')
    expect(files.pglite).toBe('700')
    expect(files['jwt-secret']).toBe('600')
    const transcript = Object.keys(files).find(
      (p) => p.startsWith('workspaces/ws-private/claude-home/projects/') && p.endsWith('.jsonl'),
    )
    expect(transcript).toBeDefined()
    expect(files[transcript!]).toBe('600')
    expect(Object.keys(run).some((p) => p.endsWith('/project'))).toBe(true)
  })
})
