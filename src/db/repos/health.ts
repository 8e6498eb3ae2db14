import { sql } from 'drizzle-orm'
import type { Db } from '../handle.ts'

/** One round trip: throws when the database cannot answer. */
export async function pingDatabase(db: Db): Promise<void> {
  await db.execute(sql`select 1`)
}
