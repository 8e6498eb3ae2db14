import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core'
import type * as schema from './schema.ts'

/**
 * A query handle: the database, or a transaction inside it (a drizzle transaction satisfies the
 * same type), so every repo function runs either way.
 */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>

/** The opened database: its handle, the driver behind it, LISTEN, and close. */
export interface Database {
  db: Db
  driver: 'pglite' | 'postgres'
  /** LISTEN on a lower-case channel; `onListen` runs on every (re)connect so callers can re-sync. */
  listen(
    channel: string,
    onMessage: (payload: string) => void,
    onListen?: () => void,
  ): Promise<void>
  /** NOTIFY outside a transaction (Postgres; PGlite has no other process to tell). */
  notify(channel: string, payload: string): Promise<void>
  close(): Promise<void>
}
