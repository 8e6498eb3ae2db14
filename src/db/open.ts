import { PGlite } from '@electric-sql/pglite'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js'
import { mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import postgres from 'postgres'
import type { Logger } from '../log.ts'
import type { Database, Presence } from './handle.ts'
import { privateTree } from '../private-tree.ts'
import { lockDataDir } from './data-dir-lock.ts'
import { migrate } from './migrate.ts'
import { pgliteAssetOptions, pgliteSeed } from './pglite-assets.ts'
import * as schema from './schema.ts'

export interface OpenOptions {
  databaseUrl: string | null
  dataDir: string
  log: Logger
  /** Pool size for postgres (default 10). */
  maxConnections?: number
  /** Apply pending migrations on open (default true; `migrate --dry-run` only looks). */
  migrate?: boolean
}

/** Opens (and migrates) the embedded PGlite in `dataDir`, or Postgres at `databaseUrl`. */
export async function openDatabase(opts: OpenOptions): Promise<Database> {
  return opts.databaseUrl ? openPostgres(opts.databaseUrl, opts) : openPglite(opts)
}

/**
 * While Postgres is away, a query fails within about two seconds (connect timeout), and once it
 * is back the pool reconnects within half a second: postgres.js's default backoff grows with
 * every refused connect (shared by the whole pool) up to 20 s, so a short restart used to keep
 * the broker away for 10 s and more.
 */
const FAIL_FAST = {
  connect_timeout: 1.5,
  backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 0.5),
}

const PRESENCE_TICK_MS = 500

/**
 * A session-level advisory lock on a reserved connection, checked every PRESENCE_TICK_MS: a new
 * backend (the connection was re-made after a restart) takes the lock again.
 */
async function holdPresence(client: postgres.Sql, key: string, log: Logger): Promise<Presence> {
  let reserved: postgres.ReservedSql | null = null
  let backend: number | null = null
  let stopped = false
  let busy = false
  const take = async () => {
    reserved ??= await client.reserve()
    const [row] = await reserved<{ pid: number }[]>`select pg_backend_pid() as pid`
    if (row!.pid === backend) return
    await reserved`select pg_advisory_lock(hashtext('cc-broker/presence'), hashtext(${key}))`
    backend = row!.pid
  }
  const tick = async () => {
    if (busy || stopped) return
    busy = true
    try {
      await take()
    } catch (err) {
      if (backend !== null) log.warn('lost the presence lock; taking it again', { err })
      backend = null
      reserved?.release()
      reserved = null
    } finally {
      busy = false
    }
  }
  await take()
  const timer = setInterval(() => void tick(), PRESENCE_TICK_MS)
  return {
    held: () => backend !== null,
    async release() {
      stopped = true
      clearInterval(timer)
      // Unlocked before the connection goes back to the pool, which keeps session locks.
      const held = reserved
      reserved = null
      if (!held) return
      await held`select pg_advisory_unlock_all()`.catch(() => {})
      held.release()
    },
  }
}

async function openPostgres(url: string, opts: OpenOptions): Promise<Database> {
  const quiet = { onnotice: () => {} }
  // One connection holds the advisory lock for the whole migration (several brokers may start).
  const migrator = postgres(url, { max: 1, ...quiet })
  try {
    await migrator`select pg_advisory_lock(7270417)`
    if (opts.migrate !== false) await migrate(drizzlePostgres(migrator, { schema }))
    await migrator`select pg_advisory_unlock(7270417)`
  } finally {
    await migrator.end()
  }
  const client = postgres(url, { max: opts.maxConnections ?? 10, ...quiet, ...FAIL_FAST })
  const db = drizzlePostgres(client, { schema })
  return {
    db,
    driver: 'postgres',
    holdPresence: (key) => holdPresence(client, key, opts.log),
    query: async (text, params) =>
      (await client.unsafe(text, params as never[], { prepare: true })) as unknown as Record<
        string,
        unknown
      >[],
    async listen(channel, onMessage, onListen) {
      await client.listen(channel, onMessage, onListen)
    },
    async notify(channel, payload) {
      await client.notify(channel, payload)
    },
    close: () => client.end({ timeout: 5 }),
  }
}

async function openPglite(opts: OpenOptions): Promise<Database> {
  const dir = join(opts.dataDir, 'pglite')
  await mkdir(dir, { recursive: true })
  const lock = await lockDataDir(dir)
  try {
    const fresh = (await readdir(dir)).every((name) => name.startsWith('.'))
    if (fresh) opts.log.info('creating the embedded database', { dir })
    const pg = await PGlite.create({
      dataDir: dir,
      ...(await pgliteAssetOptions()),
      ...(fresh ? { loadDataDir: pgliteSeed() } : {}),
    })
    const db = drizzlePglite(pg, { schema })
    if (opts.migrate !== false) await migrate(db)
    await privateTree(dir)
    return {
      db,
      driver: 'pglite',
      // One process per data directory: there is no other broker to tell.
      holdPresence: async () => null,
      query: async (text, params) => (await pg.query<Record<string, unknown>>(text, params)).rows,
      async listen(channel, onMessage, onListen) {
        await pg.listen(channel, onMessage)
        onListen?.()
      },
      async notify(channel, payload) {
        await pg.query('select pg_notify($1, $2)', [channel, payload])
      },
      async close() {
        await pg.close()
        await lock.release()
      },
    }
  } catch (err) {
    await lock.release()
    throw err
  }
}
