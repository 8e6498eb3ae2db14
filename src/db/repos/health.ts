import { sql } from 'drizzle-orm'
import type { Db } from '../handle.ts'

/**
 * One round trip: throws when the database cannot answer. A failure is tried once more: after
 * a database restart a pooled connection may still be the dead one, and the next is fresh.
 */
export async function pingDatabase(db: Db): Promise<void> {
  await db.execute(sql`select 1`).catch(() => db.execute(sql`select 1`))
}
