import type { Db } from '../db/handle.ts'
import { getSession } from '../db/repos/sessions.ts'
import {
  countQueuedTurns,
  getTurn,
  insertTurn,
  listSessionTurns,
  updateTurn,
} from '../db/repos/turns.ts'
import type { TurnRow } from '../db/schema.ts'
import { ConflictError, NotFoundError, QueueFullError, UnavailableError } from '../errors.ts'
import type { EventLog } from '../events/log.ts'
import { newTurnId } from '../ids.ts'
import type { Budgets } from '../usage/budgets.ts'
import { cancelled, finishTurn, isTerminal } from './outcome.ts'

export interface EnqueueInput {
  sessionId: string
  workspaceId: string
  userMessage: string | unknown[]
  imChannelId?: string
  imUserId?: string
  metadata?: Record<string, unknown>
  source?: string
}

/**
 * The durable per-session queue: enqueue (the user message and the turn row commit together,
 * under the session lock, so the depth check holds), cancel, and reads.
 */
export function createTurnQueue(deps: {
  db: Db
  events: EventLog
  depth: number
  /** Why turns cannot run here (no Claude Code binary), or null. */
  unavailable: string | null
  /** Tells the runner there may be work (this process). */
  wake: () => void
  /** Tells the runner to stop a turn it runs (this process); false when it runs elsewhere. */
  cancelRunning: (turnId: string) => boolean
  /** Refuses a turn whose session's or workspace's budget is spent (409). */
  budgets?: Budgets
}) {
  const { db } = deps

  /** `within` runs in the enqueue's transaction (the scheduler records its firing there). */
  async function enqueue(
    input: EnqueueInput,
    opts: { within?: (tx: Db, turnId: string) => Promise<void> } = {},
  ): Promise<TurnRow> {
    if (deps.unavailable) throw new UnavailableError(deps.unavailable)
    const sessionId = input.sessionId
    if (deps.budgets) {
      const existing = await getSession(db, sessionId)
      await deps.budgets.admit(
        existing ?? { id: sessionId, workspaceId: input.workspaceId, budgetUsd: null },
        null,
      )
    }
    const id = newTurnId()
    const uuid = crypto.randomUUID()
    const payload: Record<string, unknown> = {
      type: 'user',
      message: { role: 'user', content: input.userMessage },
      parent_tool_use_id: null,
      session_id: null,
      uuid,
    }
    let turn: TurnRow | null = null
    // One transaction: a new session, the user message and the turn row commit together or not
    // at all, and the depth check holds under the session lock.
    await deps.events.append(sessionId, [{ payload }], {
      source: 'client',
      turnId: id,
      ensureSession: {
        id: sessionId,
        workspaceId: input.workspaceId,
        source: input.source ?? (input.imChannelId ? 'im' : 'api'),
      },
      within: async (tx, session) => {
        if (session.workspaceId !== input.workspaceId)
          throw new ConflictError(
            `session ${sessionId} belongs to workspace ${session.workspaceId}, not ${input.workspaceId}`,
          )
        payload.session_id = session.claudeSessionId
        const queued = await countQueuedTurns(tx, sessionId)
        if (queued >= deps.depth)
          throw new QueueFullError(
            `session ${sessionId} already has ${queued} turns waiting (limit ${deps.depth})`,
            5,
          )
        await opts.within?.(tx, id)
        turn = await insertTurn(tx, {
          id,
          sessionId,
          workspaceId: session.workspaceId,
          userEventId: uuid,
          imChannelId: input.imChannelId ?? null,
          imUserId: input.imUserId ?? null,
          metadata: input.metadata ?? {},
        })
      },
    })
    deps.wake()
    return turn!
  }

  async function get(id: string): Promise<TurnRow> {
    const turn = await getTurn(db, id)
    if (!turn) throw new NotFoundError(`turn ${id} not found`)
    return turn
  }

  /**
   * Queued → cancelled at once. Running → the worker is interrupted and stopped by whichever
   * broker runs it; this waits (up to `waitMs`) for that to finish. Finished → 409.
   */
  async function cancel(id: string, waitMs: number): Promise<TurnRow> {
    const turn = await get(id)
    if (isTerminal(turn.state)) throw new ConflictError(`turn ${id} is already ${turn.state}`)
    if (turn.state === 'queued') {
      const row = await finishTurn(deps.events, turn, cancelled('cancelled before it started'), {
        state: 'queued',
      })
      if (row) return row
      // Started meanwhile: cancelled as a running turn below.
    }
    const running = await updateTurn(db, id, { cancelRequested: true }, { state: 'running' })
    if (!running) return cancel(id, waitMs)
    deps.cancelRunning(id)
    const deadline = Date.now() + waitMs
    for (;;) {
      const now = await get(id)
      if (isTerminal(now.state) || Date.now() > deadline) return now
      await Bun.sleep(50)
    }
  }

  return {
    enqueue,
    get,
    cancel,
    /** A session's turns, newest first; 404 for an unknown session. */
    async list(sessionId: string, before: string | undefined, limit: number) {
      if (!(await getSession(db, sessionId)))
        throw new NotFoundError(`session ${sessionId} not found`)
      return listSessionTurns(db, sessionId, { before, limit })
    },
  }
}

export type TurnQueue = ReturnType<typeof createTurnQueue>
