// The broker's JSON resources as its API answers them (snake_case, as on the wire).
import type { ResultSummary, Usage } from './events.ts'

export interface Session {
  id: string
  workspace_id: string
  title: string
  status: string
  epoch: number
  external_id: string | null
  source: string
  tags: string[]
  /** Claude Code's own session UUID (`--session-id`, `--resume`). */
  claude_session_id: string
  archived: boolean
  /** The session's budget in USD, or null for none. */
  budget_usd: number | null
  /** The session it was forked from, or null. */
  forked_from: string | null
  /** What its turns have spent so far. */
  usage: UsageTotals
  created_at: string
  updated_at: string
  [k: string]: unknown
}

/** Spend and tokens summed over worker results, in all and per model. */
export interface UsageTotals {
  cost_usd: number
  input_tokens: number
  output_tokens: number
  cache_read_input_tokens: number
  cache_creation_input_tokens: number
  results: number
  by_model: Record<
    string,
    {
      cost_usd: number
      input_tokens: number
      output_tokens: number
      cache_read_input_tokens: number
      cache_creation_input_tokens: number
    }
  >
}

export type TurnState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled'

export interface Turn {
  id: string
  session_id: string
  workspace_id: string
  state: TurnState
  attempts: number
  error: string | null
  cost_usd: number | null
  usage: Usage | null
  result: ResultSummary | null
  metadata: Record<string, unknown>
  im_channel_id: string | null
  im_user_id: string | null
  enqueued_at: string
  started_at: string | null
  finished_at: string | null
  [k: string]: unknown
}

export interface Page<T> {
  data: T[]
  next_cursor: string | null
}

/** What a turn needs: the session (created when new), its workspace, the message. */
export interface TurnInput {
  sessionId: string
  workspaceId: string
  /** Text, or content blocks as in the Messages API. */
  message: string | Record<string, unknown>[]
  /** `model`, `permission_mode`, `max_duration_ms`, `max_budget_usd`, and anything kept. */
  metadata?: Record<string, unknown>
  imChannelId?: string
  imUserId?: string
}
