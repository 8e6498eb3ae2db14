import { describe, expect, test } from 'bun:test'
import { join, resolve } from 'node:path'
import { spawnBroker } from '../helpers/broker-process.ts'
import { databases } from '../helpers/databases.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import {
  isRunning,
  newSessionId,
  readWorkerRecords,
  scenario,
  scenarioClaudeBin,
  TRANSPORTS,
} from '../helpers/turns.ts'
import { until } from '../helpers/until.ts'
import { startWorkerControl } from '../../src/testing/worker-control.ts'

const ROOT = resolve(import.meta.dir, '../..')

describe.each(TRANSPORTS)('stopping a broker on %s', (transport) => {
  test('SIGTERM hands a running turn back (turn_requeued, not counted as an attempt); the next broker runs it to done', async () => {
    await using dir = await tempDir('ccb-stop-')
    await using control = await startWorkerControl()
    const recordDir = join(dir.path, 'records')
    await Bun.write(join(recordDir, '.keep'), '')
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir.path,
      CCBROKER_PORT: '0',
      CCBROKER_DATA_DIR: join(dir.path, 'data'),
      CCBROKER_LOG_LEVEL: 'info',
      CCBROKER_CLAUDE_BIN: await scenarioClaudeBin(dir.path),
      CCBROKER_WORKER_TRANSPORT: transport,
      CCBROKER_STOP_GRACE_MS: '300',
      CCBROKER_WORKER_ENV: `FAKE_CLAUDE_RECORD_DIR=${recordDir},FAKE_CLAUDE_CONTROL_URL=${control.url}`,
    }
    const sessionId = newSessionId()
    // The first worker stops at its turn's start and stays there: it is mid-turn at SIGTERM.
    const held = control.hold(sessionId)
    let turnId: string
    let worker: { pid: number }
    {
      await using first = await spawnBroker(env)
      const res = await first.api('POST', '/api/v2/turns', {
        session_id: sessionId,
        workspace_id: 'ws-stop',
        user_message: 'interrupted by a restart',
        metadata: scenario('control'),
      })
      expect(res.status).toBe(202)
      turnId = res.body.turn_id
      worker = await held.arrived
      expect(await first.stop()).toBe(0)
      // The broker stopped its worker before it exited.
      expect(await isRunning(worker.pid)).toBe(false)
    }
    await using second = await spawnBroker(env)
    const done = await until(
      async () => {
        const t = (await second.api('GET', `/api/turns/${turnId}`)).body.turn
        return ['done', 'failed', 'cancelled'].includes(t.state) ? t : null
      },
      { what: 'the turn to finish under the second broker' },
    )
    // Handed back, the first run did not count: this is its first counted attempt.
    expect(done).toEqual(expect.objectContaining({ state: 'done', attempts: 1, error: null }))
    expect(done.result.result).toStartWith('echo: interrupted by a restart')
    const events = (await second.api('GET', `/v1/sessions/${sessionId}/events?limit=1000`)).body
      .data as Record<string, any>[]
    const broker = events.filter((e) => e.turn_id === turnId && e.source === 'broker')
    expect(broker.map((e) => e.event_type).filter((t) => !t.startsWith('workspace_'))).toEqual([
      'turn_started',
      'turn_requeued',
      'turn_started',
      'done',
    ])
    expect(broker.find((e) => e.event_type === 'turn_requeued')!.payload).toEqual({
      type: 'turn_requeued',
      uuid: expect.any(String),
      turn_id: turnId,
      reason: 'the broker is shutting down',
    })
    // Two workers in all: the stopped one and the one that finished.
    expect(await readWorkerRecords(recordDir, sessionId)).toHaveLength(2)
  })

  test('a broker stopped after a turn leaves nothing behind that keeps its process alive', async () => {
    await using dir = await tempDir('ccb-exit-')
    // A script that runs one turn on an in-process broker, stops it and just returns.
    const script = `
      import { startBroker } from ${JSON.stringify(join(ROOT, 'src/broker.ts'))}
      import { loadConfig } from ${JSON.stringify(join(ROOT, 'src/config.ts'))}
      const broker = await startBroker(loadConfig({
        CCBROKER_PORT: '0', CCBROKER_LOG_LEVEL: 'silent', CCBROKER_DATA_DIR: ${JSON.stringify(join(dir.path, 'data'))},
        CCBROKER_CLAUDE_BIN: ${JSON.stringify(await scenarioClaudeBin(dir.path))},
        CCBROKER_WORKER_TRANSPORT: ${JSON.stringify(transport)}, CCBROKER_STOP_GRACE_MS: '300',
      }))
      const res = await fetch(broker.url + '/api/turns', {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ session_id: 's1', workspace_id: 'w', user_message: 'once' }),
      })
      const text = await res.text()
      await broker.stop()
      console.log(text.includes('"state":"done"') ? 'turn done, broker stopped' : text)
    `
    await using proc = Bun.spawn([process.execPath, '--no-env-file', '-e', script], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir.path },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const stdout = new Response(proc.stdout).text()
    // It must exit on its own once the broker stopped (a pending per-turn timer would hold it
    // for the turn's maximum duration, 30 minutes by default).
    await until(() => proc.exitCode !== null, {
      what: 'the process to exit by itself',
      deadlineMs: 30_000,
    })
    expect({ exitCode: proc.exitCode, stdout: (await stdout).trim() }).toEqual({
      exitCode: 0,
      stdout: 'turn done, broker stopped',
    })
  })
})
