import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { TEST_SECRET } from '../helpers/broker.ts'
import { spawnBroker, type BrokerProcess } from '../helpers/broker-process.ts'
import { followAcross, logOf, startWriters } from '../helpers/fault-load.ts'
import { pgBinDir, startPgCluster, type PgCluster } from '../helpers/pg-cluster.ts'
import { tempDir, type TempDir } from '../helpers/temp-dir.ts'
import { until } from '../helpers/until.ts'

const pgBin = await pgBinDir()
if (!pgBin) console.log('skip: fault suite (no PostgreSQL server binaries to start a cluster)')

/** Two replicas on one throwaway cluster, a session, and a worker generation to post with. */
async function replicas(pg: PgCluster, dir: TempDir, n = 2) {
  const brokers: BrokerProcess[] = []
  for (let i = 0; i < n; i++)
    brokers.push(
      await spawnBroker({
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: dir.path,
        CCBROKER_PORT: '0',
        CCBROKER_DATA_DIR: join(dir.path, `replica-${i}`),
        CCBROKER_DATABASE_URL: pg.url,
        CCBROKER_JWT_SECRET: TEST_SECRET,
        CCBROKER_LOG_LEVEL: 'info',
      }),
    )
  const created = await brokers[0]!.api('POST', '/v1/sessions', { workspace_id: 'ws-fault' })
  const sessionId = created.body.session.id as string
  const bridge = await brokers[0]!.api('POST', `/v1/sessions/${sessionId}/bridge`)
  return {
    brokers,
    urls: brokers.map((b) => b.url),
    sessionId,
    token: bridge.body.worker_jwt as string,
    epoch: bridge.body.worker_epoch as number,
  }
}

describe.skipIf(!pgBin)('a Postgres restart under load', () => {
  test('fast restart with writers and listeners on two replicas: nobody dies, every acknowledged event is stored once, listeners get all of them in order, and the broker serves again within a second', async () => {
    await using pg = await startPgCluster()
    await using dir = await tempDir('ccb-fault-')
    const r = await replicas(pg, dir)
    try {
      const listeners = r.urls.map((_, i) =>
        followAcross({ urls: [...r.urls.slice(i), ...r.urls.slice(0, i)], sessionId: r.sessionId }),
      )
      const writers = startWriters({ ...r, writers: 4, batch: 10 })
      await until(() => writers.acked.ids.size >= 200, { what: 'load before the restart' })
      await pg.restart('fast')
      const back = Date.now()
      const before = writers.acked.acks.length
      await until(() => writers.acked.acks.some((t) => t > back), {
        what: 'a 2xx after the restart',
      })
      const firstAck = writers.acked.acks.slice(before).find((t) => t > back)!
      await until(() => writers.acked.ids.size >= 600, { what: 'load after the restart' })
      await writers.stop()

      // No replica died.
      for (const b of r.brokers) expect(b.proc.exitCode).toBeNull()
      // Every acknowledged event is in the log, exactly once.
      const log = await logOf(r.urls[1]!, r.sessionId)
      const stored = log.map((e) => e.event_id)
      expect(new Set(stored).size).toBe(stored.length)
      const missing = [...writers.acked.ids].filter((id) => !stored.includes(id))
      expect(missing).toEqual([])
      // Listeners on both replicas end complete: every event, in order, none twice.
      const all = log.map((e) => e.sequence_num)
      for (const l of listeners) {
        await until(() => l.seqs.length >= all.length, { what: 'a listener to catch up' })
        await l.stop()
        expect(l.seqs).toEqual(all)
      }
      // Serving again within about a second of Postgres being back.
      expect(firstAck - back).toBeLessThan(1_500)
    } finally {
      for (const b of r.brokers) await b[Symbol.asyncDispose]()
    }
  })

  test('during an outage requests fail fast with 503 JSON and Retry-After, /healthz too; within a second of Postgres being back they succeed', async () => {
    await using pg = await startPgCluster()
    await using dir = await tempDir('ccb-fault-')
    const r = await replicas(pg, dir, 1)
    const [broker] = r.brokers
    try {
      await pg.stop('fast')
      const post = async () => {
        const started = Date.now()
        const res = await fetch(`${broker!.url}/v1/sessions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ workspace_id: 'ws-outage' }),
        })
        return { ms: Date.now() - started, res, body: await res.json() }
      }
      for (let i = 0; i < 3; i++) {
        const { ms, res, body } = await post()
        expect(res.status).toBe(503)
        expect(res.headers.get('retry-after')).toBe('1')
        expect(body).toEqual({ error: 'the database is unavailable right now; retry in a moment' })
        expect(ms).toBeLessThan(2_500)
      }
      const health = await fetch(`${broker!.url}/healthz`)
      expect(health.status).toBe(503)
      await pg.start()
      const back = Date.now()
      await until(async () => (await post()).res.status === 201, { what: 'a 201 after the outage' })
      expect(Date.now() - back).toBeLessThan(1_500)
      expect((await fetch(`${broker!.url}/healthz`)).status).toBe(200)
      expect(broker!.proc.exitCode).toBeNull()
    } finally {
      await broker![Symbol.asyncDispose]()
    }
  })
})
