import { createHash } from 'node:crypto'
import { PgDialect } from 'drizzle-orm/pg-core'
import { embeddedMigrations } from './migrations.gen.ts'
import type { Db } from './handle.ts'

/** The embedded migrations in the shape drizzle's folder reader produces (same hashes). */
export const embeddedMigrationMeta = () =>
  embeddedMigrations.map((m) => ({
    sql: m.sql.split('--> statement-breakpoint'),
    bps: m.breakpoints,
    folderMillis: m.when,
    hash: createHash('sha256').update(m.sql).digest('hex'),
  }))

export const migrate = (db: Db) =>
  // The dialect is typed for a schema-less session; ours carries the schema, which it ignores.
  new PgDialect().migrate(embeddedMigrationMeta(), db._.session as never, {
    migrationsFolder: '(embedded)',
    migrationsTable: '__drizzle_migrations',
    migrationsSchema: 'drizzle',
  })
