import { sql } from 'drizzle-orm'
import type { Db } from '../../src/db/handle.ts'

/** How many rows each table a request could write to holds: to assert nothing was stored. */
export async function storedCounts(db: Db) {
  const tables = [
    'sessions',
    'session_events',
    'turns',
    'scheduled_tasks',
    'session_workers',
    'permissions',
  ] as const
  const counts: Record<string, number> = {}
  for (const table of tables) {
    const result = await db.execute(sql.raw(`select count(*)::int as n from ${table}`))
    const rows = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as {
      n: number
    }[]
    counts[table] = Number(rows[0]!.n)
  }
  return counts
}
