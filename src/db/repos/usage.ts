import { and, eq, gte, inArray, sql, type SQL } from 'drizzle-orm'
import type { Db } from '../handle.ts'
import { sessions, turnUsage, workspaceBudgets, type ModelUsage } from '../schema.ts'

export type NewTurnUsage = typeof turnUsage.$inferInsert

/** Once per result event: a worker retrying its batch, or a second look, records nothing more. */
export async function insertTurnUsage(db: Db, values: NewTurnUsage): Promise<boolean> {
  const rows = await db
    .insert(turnUsage)
    .values(values)
    .onConflictDoNothing()
    .returning({ id: turnUsage.eventId })
  return rows.length > 0
}

/** Summed usage: of every row matching, with per-model sums. */
export interface UsageTotals {
  cost_usd: number
  input_tokens: number
  output_tokens: number
  cache_read_input_tokens: number
  cache_creation_input_tokens: number
  /** How many worker results were counted. */
  results: number
  by_model: Record<string, ModelUsage>
}

export const emptyUsage = (): UsageTotals => ({
  cost_usd: 0,
  input_tokens: 0,
  output_tokens: 0,
  cache_read_input_tokens: 0,
  cache_creation_input_tokens: 0,
  results: 0,
  by_model: {},
})

const MODEL_KEYS = [
  'input_tokens',
  'output_tokens',
  'cache_read_input_tokens',
  'cache_creation_input_tokens',
  'cost_usd',
] as const

/**
 * Usage totals grouped by `key` (a session id, or one constant for all), over the rows `where`
 * selects: the sums in SQL, the per-model sums from each row's models.
 */
async function sumUsage(db: Db, where: SQL | undefined, bySession: boolean) {
  const key = bySession ? sql<string>`${turnUsage.sessionId}` : sql<string>`''`
  const query = db
    .select({
      key,
      cost: sql<number>`coalesce(sum(${turnUsage.costUsd}), 0)::float8`,
      input: sql<number>`coalesce(sum(${turnUsage.inputTokens}), 0)::float8`,
      output: sql<number>`coalesce(sum(${turnUsage.outputTokens}), 0)::float8`,
      cacheRead: sql<number>`coalesce(sum(${turnUsage.cacheReadInputTokens}), 0)::float8`,
      cacheCreation: sql<number>`coalesce(sum(${turnUsage.cacheCreationInputTokens}), 0)::float8`,
      results: sql<number>`count(*)::int`,
    })
    .from(turnUsage)
    .where(where)
  // Without sessions: one row of sums (a constant cannot be grouped by).
  const totals = bySession ? await query.groupBy(turnUsage.sessionId) : await query
  // Per model, summed here: jsonb_each answers differ in shape between the two drivers.
  const models = await db
    .select({ key, modelUsage: turnUsage.modelUsage })
    .from(turnUsage)
    .where(and(where, sql`${turnUsage.modelUsage} <> '{}'::jsonb`))
  const out = new Map<string, UsageTotals>()
  for (const t of totals)
    out.set(t.key, {
      cost_usd: Number(t.cost),
      input_tokens: Number(t.input),
      output_tokens: Number(t.output),
      cache_read_input_tokens: Number(t.cacheRead),
      cache_creation_input_tokens: Number(t.cacheCreation),
      results: Number(t.results),
      by_model: {},
    })
  for (const m of models) {
    const sums = out.get(m.key)
    if (!sums) continue
    for (const [model, u] of Object.entries(m.modelUsage)) {
      const into = (sums.by_model[model] ??= {
        input_tokens: 0,
        output_tokens: 0,
        cache_read_input_tokens: 0,
        cache_creation_input_tokens: 0,
        cost_usd: 0,
      })
      for (const k of MODEL_KEYS) into[k] += Number(u[k] ?? 0)
    }
  }
  return out
}

/** Usage of each of these sessions (sessions with none answer the empty totals). */
export async function sumSessionsUsage(
  db: Db,
  sessionIds: string[],
): Promise<Map<string, UsageTotals>> {
  if (sessionIds.length === 0) return new Map()
  const found = await sumUsage(db, inArray(turnUsage.sessionId, sessionIds), true)
  return new Map(sessionIds.map((id) => [id, found.get(id) ?? emptyUsage()]))
}

/** A workspace's usage since `since` (all time without): in all, and by session. */
export async function sumWorkspaceUsage(db: Db, workspaceId: string, since?: Date) {
  const where = and(
    eq(turnUsage.workspaceId, workspaceId),
    since ? gte(turnUsage.createdAt, since) : undefined,
  )
  const [all, bySession] = await Promise.all([
    sumUsage(db, where, false),
    sumUsage(db, where, true),
  ])
  return { total: all.get('') ?? emptyUsage(), bySession }
}

/** What a session and its workspace have spent, in USD, all time. */
export async function sumSpend(
  db: Db,
  sessionId: string,
  workspaceId: string,
): Promise<{ session: number; workspace: number }> {
  const rows = await db
    .select({
      session: sql<number>`coalesce(sum(${turnUsage.costUsd}) filter (where ${turnUsage.sessionId} = ${sessionId}), 0)::float8`,
      workspace: sql<number>`coalesce(sum(${turnUsage.costUsd}), 0)::float8`,
    })
    .from(turnUsage)
    .where(eq(turnUsage.workspaceId, workspaceId))
  return { session: Number(rows[0]?.session ?? 0), workspace: Number(rows[0]?.workspace ?? 0) }
}

export async function getWorkspaceBudget(db: Db, workspaceId: string): Promise<number | null> {
  const rows = await db
    .select({ budgetUsd: workspaceBudgets.budgetUsd })
    .from(workspaceBudgets)
    .where(eq(workspaceBudgets.workspaceId, workspaceId))
  return rows[0]?.budgetUsd ?? null
}

/** Sets (a number) or removes (null) a workspace's own budget. */
export async function setWorkspaceBudget(
  db: Db,
  workspaceId: string,
  budgetUsd: number | null,
): Promise<void> {
  if (budgetUsd === null) {
    await db.delete(workspaceBudgets).where(eq(workspaceBudgets.workspaceId, workspaceId))
    return
  }
  await db
    .insert(workspaceBudgets)
    .values({ workspaceId, budgetUsd })
    .onConflictDoUpdate({
      target: workspaceBudgets.workspaceId,
      set: { budgetUsd, updatedAt: sql`now()` },
    })
}

export async function setSessionBudget(
  db: Db,
  sessionId: string,
  budgetUsd: number | null,
): Promise<boolean> {
  const rows = await db
    .update(sessions)
    .set({ budgetUsd, updatedAt: sql`now()` })
    .where(eq(sessions.id, sessionId))
    .returning({ id: sessions.id })
  return rows.length > 0
}
