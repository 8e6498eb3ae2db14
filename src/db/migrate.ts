import { createHash } from 'node:crypto'
import { sql } from 'drizzle-orm'
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

/** The tags of embedded migrations the database has not applied (drizzle records their hashes). */
export async function pendingMigrations(db: Db): Promise<string[]> {
  const result = await db
    .execute(sql`select hash from drizzle.__drizzle_migrations`)
    .catch((err) => {
      // A database never migrated has no drizzle schema or table yet: everything is pending.
      const code =
        (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code
      if (code === '42P01' || code === '3F000') return { rows: [] }
      throw err
    })
  const rows = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as {
    hash: string
  }[]
  const applied = new Set(rows.map((r) => r.hash))
  const meta = embeddedMigrationMeta()
  return embeddedMigrations.filter((_, i) => !applied.has(meta[i]!.hash)).map((m) => m.tag)
}
