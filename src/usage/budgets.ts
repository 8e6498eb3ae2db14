import type { Db } from '../db/handle.ts'
import { getSession } from '../db/repos/sessions.ts'
import {
  getWorkspaceBudget,
  insertTurnUsage,
  setSessionBudget,
  setWorkspaceBudget,
  sumSessionsUsage,
  sumSpend,
  sumWorkspaceUsage,
} from '../db/repos/usage.ts'
import type { SessionRow, TurnRow } from '../db/schema.ts'
import {
  BudgetExhaustedError,
  budgetMessage,
  NotFoundError,
  type BudgetStanding,
} from '../errors.ts'
import type { EventLog } from '../events/log.ts'
import { queueWebhookEvent } from '../webhooks/outbox.ts'
import { resultUsage } from './result-usage.ts'

/** Budgets are kept to the micro-dollar (after float noise); less than that left is nothing. */
const round = (usd: number) => Math.floor(Math.round(usd * 1e9) / 1e3) / 1e6

/**
 * Spend and budgets. Every worker `result` is counted when it is stored (once per event, in the
 * database: every replica sees the same totals). A turn is refused when its session's or its
 * workspace's budget is spent; otherwise it may spend what is left of the smaller one.
 */
export function createBudgets(deps: {
  db: Db
  events: EventLog
  /** A workspace's budget when it has none of its own (CCBROKER_WORKSPACE_BUDGET_USD). */
  defaultWorkspaceBudgetUsd: number | null
  /** Something was put in the webhook outbox. */
  onWebhook?: () => void
}) {
  const { db } = deps

  const workspaceBudget = async (workspaceId: string) =>
    (await getWorkspaceBudget(db, workspaceId)) ?? deps.defaultWorkspaceBudgetUsd

  /** Each budget that applies, with what is spent and left of it; the tightest first. */
  async function standings(session: Pick<SessionRow, 'id' | 'workspaceId' | 'budgetUsd'>) {
    const wsBudget = await workspaceBudget(session.workspaceId)
    // No budget at all (the common case): nothing to add up.
    if (session.budgetUsd === null && wsBudget === null) return []
    const spent = await sumSpend(db, session.id, session.workspaceId)
    const out: BudgetStanding[] = []
    if (session.budgetUsd !== null)
      out.push({
        scope: 'session',
        id: session.id,
        budget_usd: session.budgetUsd,
        spent_usd: spent.session,
        remaining_usd: Math.max(0, round(session.budgetUsd - spent.session)),
        raise: {
          method: 'PATCH',
          path: `/v1/sessions/${session.id}`,
          body: { budget_usd: 'number' },
        },
      })
    if (wsBudget !== null)
      out.push({
        scope: 'workspace',
        id: session.workspaceId,
        budget_usd: wsBudget,
        spent_usd: spent.workspace,
        remaining_usd: Math.max(0, round(wsBudget - spent.workspace)),
        raise: {
          method: 'PUT',
          path: `/v1/workspaces/${session.workspaceId}/budget`,
          body: { budget_usd: 'number' },
        },
      })
    return out.sort((a, b) => a.remaining_usd - b.remaining_usd)
  }

  /** The `budget_exhausted` event in the session's log, and `budget.exhausted` to webhooks. */
  async function exhausted(
    session: Pick<SessionRow, 'id' | 'workspaceId'>,
    b: BudgetStanding,
    turnId: string | null,
  ) {
    const sessionId = session.id
    const webhook = (tx: Db) =>
      queueWebhookEvent(tx, 'budget.exhausted', session.workspaceId, {
        session_id: sessionId,
        turn_id: turnId,
        scope: b.scope,
        budget_usd: b.budget_usd,
        spent_usd: b.spent_usd,
      })
    // A turn refused for a session it would have created: no log to write to, the webhook only.
    if (!(await getSession(db, sessionId))) {
      await webhook(db)
      deps.onWebhook?.()
      return
    }
    await deps.events.append(sessionId, [], {
      source: 'broker',
      turnId,
      within: async (tx) => {
        await webhook(tx)
        return [
          {
            payload: {
              type: 'budget_exhausted',
              turn_id: turnId,
              ...b,
              message: budgetMessage(b),
            },
          },
        ]
      },
    })
    deps.onWebhook?.()
  }

  return {
    standings,

    /**
     * Before a turn is queued or started: throws BudgetExhaustedError (after logging the event)
     * when a budget is spent; otherwise answers what the turn may spend, or null for no limit.
     */
    async admit(
      session: Pick<SessionRow, 'id' | 'workspaceId' | 'budgetUsd'>,
      turnId: string | null,
      cap?: number,
    ): Promise<number | null> {
      const tightest = (await standings(session))[0]
      if (tightest && tightest.remaining_usd <= 0) {
        await exhausted(session, tightest, turnId)
        throw new BudgetExhaustedError(tightest)
      }
      const left = tightest?.remaining_usd ?? null
      if (cap === undefined) return left
      return left === null ? cap : Math.min(left, cap)
    },

    /** A worker result, counted once; a budget it used up is said at once. */
    async record(
      turn: TurnRow,
      event: { eventId: string; payload: Record<string, unknown> },
      /** The same process's previous result, for a warm worker (see resultUsage). */
      previous?: Record<string, unknown> | null,
    ) {
      const u = resultUsage(event.payload, previous)
      const inserted = await insertTurnUsage(db, {
        sessionId: turn.sessionId,
        eventId: event.eventId,
        turnId: turn.id,
        workspaceId: turn.workspaceId,
        costUsd: u.costUsd,
        inputTokens: u.inputTokens,
        outputTokens: u.outputTokens,
        cacheReadInputTokens: u.cacheReadInputTokens,
        cacheCreationInputTokens: u.cacheCreationInputTokens,
        modelUsage: u.byModel,
      })
      if (!inserted || u.costUsd <= 0) return
      const session = await getSession(db, turn.sessionId)
      if (!session) return
      const spent = (await standings(session)).find((b) => b.remaining_usd <= 0)
      if (spent) await exhausted(session, spent, turn.id)
    },

    sessionsUsage: (ids: string[]) => sumSessionsUsage(db, ids),
    async workspaceUsage(workspaceId: string, since?: Date) {
      const [usage, budget] = await Promise.all([
        sumWorkspaceUsage(db, workspaceId, since),
        workspaceBudget(workspaceId),
      ])
      return { ...usage, budgetUsd: budget }
    },
    async workspaceBudget(workspaceId: string) {
      const [own, spent] = await Promise.all([
        getWorkspaceBudget(db, workspaceId),
        sumWorkspaceUsage(db, workspaceId),
      ])
      return {
        budgetUsd: own ?? deps.defaultWorkspaceBudgetUsd,
        fromConfig: own === null && deps.defaultWorkspaceBudgetUsd !== null,
        spentUsd: spent.total.cost_usd,
      }
    },
    setWorkspaceBudget: (workspaceId: string, usd: number | null) =>
      setWorkspaceBudget(db, workspaceId, usd),
    async setSessionBudget(sessionId: string, usd: number | null) {
      if (!(await setSessionBudget(db, sessionId, usd)))
        throw new NotFoundError(`session ${sessionId} not found`)
    },
  }
}

export type Budgets = ReturnType<typeof createBudgets>
