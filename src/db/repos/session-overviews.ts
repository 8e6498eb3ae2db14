import { and, desc, eq, ilike, or, sql } from 'drizzle-orm'
import type { Db } from '../handle.ts'
import { sessions } from '../schema.ts'

/** A session as an operator's list shows it: what it is and what it is doing now. */
export interface SessionOverviewRow {
  id: string
  workspaceId: string
  title: string
  status: string
  createdAt: Date
  /** Its newest event's time (its creation when it has none). */
  lastActivityAt: Date
  runningTurnId: string | null
  queuedTurns: number
  /** What its turns spent, as its usage counts it. */
  costUsd: number
}

// Written out in full: drizzle may render a column of the outer query unqualified, and inside
// `from turns t` a bare "id" would mean the turn's.
const sessionId = sql.raw('"sessions"."id"')
const asDate = (v: unknown) => (v instanceof Date ? v : new Date(String(v)))
// `%` and `_` in a search are literal characters, not patterns.
const likeText = (s: string) => `%${s.replace(/[\\%_]/g, '\\$&')}%`

/** Sessions by most recent activity; `search` matches id or title (any case). */
export async function listSessionOverviews(
  db: Db,
  opts: { workspaceId?: string; search?: string; limit: number },
): Promise<SessionOverviewRow[]> {
  // The newest event through the (session_id, seq) index, not a scan of the session's log.
  const lastActivity = sql`coalesce((select e.created_at from session_events e
    where e.session_id = ${sessionId} order by e.seq desc limit 1), ${sessions.createdAt})`
  const rows = await db
    .select({
      id: sessions.id,
      workspaceId: sessions.workspaceId,
      title: sessions.title,
      status: sessions.status,
      createdAt: sessions.createdAt,
      lastActivityAt: sql<unknown>`${lastActivity}`,
      runningTurnId: sql<string | null>`(select t.id from turns t
        where t.session_id = ${sessionId} and t.state = 'running' limit 1)`,
      queuedTurns: sql<number>`(select count(*)::int from turns t
        where t.session_id = ${sessionId} and t.state = 'queued')`,
      // What its results cost, each counted once (a result's total_cost_usd may be cumulative).
      costUsd: sql<number>`(select coalesce(sum(u.cost_usd), 0)::float8 from turn_usage u
        where u.session_id = ${sessionId})`,
    })
    .from(sessions)
    .where(
      and(
        opts.workspaceId ? eq(sessions.workspaceId, opts.workspaceId) : undefined,
        opts.search
          ? or(
              ilike(sessions.id, likeText(opts.search)),
              ilike(sessions.title, likeText(opts.search)),
            )
          : undefined,
      ),
    )
    .orderBy(desc(lastActivity), desc(sessions.id))
    .limit(opts.limit)
  return rows.map((r) => ({
    ...r,
    lastActivityAt: asDate(r.lastActivityAt),
    queuedTurns: Number(r.queuedTurns),
    costUsd: Number(r.costUsd),
  }))
}
