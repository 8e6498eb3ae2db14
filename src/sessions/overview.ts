import type { Db } from '../db/handle.ts'
import { listSessionOverviews } from '../db/repos/session-overviews.ts'

/** What an operator's list of sessions shows: activity, the running turn, the queue, the cost. */
export function createSessionOverview(deps: { db: Db }) {
  return {
    async list(opts: { workspaceId?: string; search?: string; limit: number }) {
      const rows = await listSessionOverviews(deps.db, { ...opts, limit: opts.limit + 1 })
      return { data: rows.slice(0, opts.limit), hasMore: rows.length > opts.limit }
    },
  }
}

export type SessionOverview = ReturnType<typeof createSessionOverview>
