import { sql } from 'drizzle-orm'
import type { Db } from '../handle.ts'

/**
 * Whether a broker holds the presence lock `key` (Database.holdPresence): tried as a
 * transaction lock, so a free one is released again at once.
 */
export async function isPresenceHeld(db: Db, key: string): Promise<boolean> {
  return db.transaction(async (t) => {
    const result = await t.execute(
      sql`select pg_try_advisory_xact_lock(hashtext('cc-broker/presence'), hashtext(${key})) as free`,
    )
    const rows = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as {
      free: boolean
    }[]
    return rows[0]?.free !== true
  })
}
