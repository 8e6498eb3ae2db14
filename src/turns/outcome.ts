import { deleteEphemeralEvents } from '../db/repos/events.ts'
import { updateTurn } from '../db/repos/turns.ts'
import type { ModelUsage, TurnRow } from '../db/schema.ts'
import { resultUsage } from '../usage/result-usage.ts'
import type { AppendItem, EventLog } from '../events/log.ts'
import type { Db } from '../db/handle.ts'
import { queueWebhookEvent } from '../webhooks/outbox.ts'

export const TERMINAL = ['done', 'failed', 'cancelled'] as const
export type TerminalState = (typeof TERMINAL)[number]
export const isTerminal = (state: string) => (TERMINAL as readonly string[]).includes(state)

/** What a turn's `result` comes to in the turn row and its `done` event. */
export interface ResultSummary {
  subtype: unknown
  is_error: boolean
  result: string | null
  total_cost_usd: number | null
  /** What this turn's result cost by itself (total_cost_usd may count the whole conversation). */
  cost_usd: number | null
  usage: unknown
  /** This result's usage per model (from Claude Code's modelUsage). */
  model_usage: Record<string, ModelUsage> | null
  num_turns: number | null
  duration_ms: number | null
}

/** How a turn ended: the state, the error that says why (null when done), the result summary. */
export interface Outcome {
  state: TerminalState
  error: string | null
  result: ResultSummary | null
}

const hasCost = (p: Record<string, unknown>) =>
  typeof p.total_cost_usd === 'number' || typeof p.modelUsage === 'object'

/** `previous`: the same process's last result (a warm worker), which this one's cost counts from. */
export function resultSummary(
  p: Record<string, unknown>,
  previous?: Record<string, unknown> | null,
): ResultSummary {
  const own = hasCost(p) ? resultUsage(p, previous) : null
  return {
    subtype: p.subtype ?? null,
    is_error: p.is_error === true,
    result: typeof p.result === 'string' ? p.result : null,
    total_cost_usd: typeof p.total_cost_usd === 'number' ? p.total_cost_usd : null,
    cost_usd: own?.costUsd ?? null,
    usage: p.usage ?? null,
    model_usage: own?.byModel ?? null,
    num_turns: typeof p.num_turns === 'number' ? p.num_turns : null,
    duration_ms: typeof p.duration_ms === 'number' ? p.duration_ms : null,
  }
}

function resultError(p: Record<string, unknown>): string {
  const detail =
    (Array.isArray(p.errors) && p.errors.length > 0 ? p.errors.map(String).join('; ') : null) ??
    (typeof p.result === 'string' && p.result ? p.result : null) ??
    (p.api_error_status ? `model API status ${p.api_error_status}` : null)
  return `worker reported an error (${String(p.subtype ?? 'error')})${detail ? `: ${detail}` : ''}`
}

export const failed = (error: string, result: ResultSummary | null = null): Outcome => ({
  state: 'failed',
  error,
  result,
})

export const cancelled = (error: string, result: ResultSummary | null = null): Outcome => ({
  state: 'cancelled',
  error,
  result,
})

/** The outcome a worker's `result` payload means; a cancel asked for wins over its success. */
export function outcomeOfResult(
  p: Record<string, unknown>,
  cancelRequested: boolean,
  previous?: Record<string, unknown> | null,
): Outcome {
  const summary = resultSummary(p, previous)
  if (cancelRequested) return cancelled('cancelled', summary)
  if (p.is_error === true) return failed(resultError(p), summary)
  return { state: 'done', error: null, result: summary }
}

/** The events that end a turn: an `error` for a failure, then the `done` frame, the last one. */
export function endEvents(turnId: string, o: Outcome): AppendItem[] {
  const done = { type: 'done', turn_id: turnId, state: o.state, error: o.error, result: o.result }
  const error = { type: 'error', turn_id: turnId, message: o.error }
  return (o.state === 'failed' && o.error ? [error, done] : [done]).map((payload) => ({ payload }))
}

/** `turn.done|failed|cancelled` for webhooks, in the transaction that ends the turn. */
export function queueTurnWebhook(tx: Db, turn: TurnRow, o: Outcome) {
  return queueWebhookEvent(tx, `turn.${o.state}`, turn.workspaceId, {
    session_id: turn.sessionId,
    turn_id: turn.id,
    state: o.state,
    error: o.error,
    cost_usd: o.result?.cost_usd ?? null,
    num_turns: o.result?.num_turns ?? null,
    duration_ms: o.result?.duration_ms ?? null,
    // A glimpse, not the transcript: the receiver reads the rest through the API.
    result_preview: o.result?.result ? o.result.result.slice(0, 500) : null,
  })
}

/** Which turn may be ended: it must still be in `state` (and held by `owner`, when given). */
export interface FinishGuard {
  state: 'queued' | 'running'
  owner?: string
}

/**
 * Ends a turn in one transaction: the guarded update of its row to the outcome, and its end
 * events. Answers the updated row, or null when the guard no longer held (the turn started,
 * ended or moved to another broker meanwhile); then nothing is written.
 */
export async function finishTurn(
  events: EventLog,
  turn: Pick<TurnRow, 'id' | 'sessionId'>,
  outcome: Outcome,
  guard: FinishGuard,
): Promise<TurnRow | null> {
  let row: TurnRow | null = null
  await events.append(turn.sessionId, [], {
    source: 'broker',
    turnId: turn.id,
    within: async (tx) => {
      row = await updateTurn(
        tx,
        turn.id,
        {
          state: outcome.state,
          error: outcome.error,
          result: outcome.result as Record<string, unknown> | null,
          finishedAt: new Date(),
        },
        guard,
      )
      if (!row) return []
      await queueTurnWebhook(tx, row, outcome)
      // The fragments have served their live listeners; replays show whole messages.
      await deleteEphemeralEvents(tx, turn.sessionId, turn.id)
      return endEvents(turn.id, outcome)
    },
  })
  return row
}
