import { PGlite } from '@electric-sql/pglite'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js'
import { mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import postgres from 'postgres'
import type { Logger } from '../log.ts'
import type { Database } from './handle.ts'
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
}

/** Opens (and migrates) the embedded PGlite in `dataDir`, or Postgres at `databaseUrl`. */
export async function openDatabase(opts: OpenOptions): Promise<Database> {
  return opts.databaseUrl ? openPostgres(opts.databaseUrl, opts) : openPglite(opts)
}

async function openPostgres(url: string, opts: OpenOptions): Promise<Database> {
  const quiet = { onnotice: () => {} }
  // One connection holds the advisory lock for the whole migration (several brokers may start).
  const migrator = postgres(url, { max: 1, ...quiet })
  try {
    await migrator`select pg_advisory_lock(7270417)`
    await migrate(drizzlePostgres(migrator, { schema }))
    await migrator`select pg_advisory_unlock(7270417)`
  } finally {
    await migrator.end()
  }
  const client = postgres(url, { max: opts.maxConnections ?? 10, ...quiet })
  const db = drizzlePostgres(client, { schema })
  return {
    db,
    driver: 'postgres',
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
    await migrate(db)
    await privateTree(dir)
    return {
      db,
      driver: 'pglite',
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
