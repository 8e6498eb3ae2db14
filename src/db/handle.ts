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
  /**
   * One statement straight through the driver, as its own transaction: for the hot path, where
   * building the query is worth saving (a constant text is prepared once). Rows as the driver
   * gives them (snake_case, JSON decoded).
   */
  query(text: string, params: unknown[]): Promise<Record<string, unknown>[]>
  /** NOTIFY outside a transaction (Postgres; PGlite has no other process to tell). */
  notify(channel: string, payload: string): Promise<void>
  /**
   * Holds `key` as a session-level advisory lock on a connection of its own for as long as the
   * process lives (re-taken after a reconnect), so other brokers can see this one is alive; it
   * vanishes with the process or its connection. Postgres only: null on PGlite.
   */
  holdPresence(key: string): Promise<Presence | null>
  close(): Promise<void>
}

/** A held presence lock (see Database.holdPresence). */
export interface Presence {
  /** Whether the lock was held at the last check (false while the database is away). */
  held(): boolean
  release(): Promise<void>
}
