/**
 * The broker's events as callers see them: an envelope (`BrokerEvent`) around a payload, which
 * is a Claude Code message or one of the broker's own. Unknown fields may appear in any release;
 * the types name the ones a caller can rely on.
 */

/** One event of a session's log. */
export interface BrokerEvent<P extends EventPayload = EventPayload> {
  event_id: string
  /** Its place in the session's log: the SSE `id:` and the cursor for `Last-Event-ID`. */
  sequence_num: number
  event_type: P['type']
  /** `client` (callers), `worker` (Claude Code) or `broker`. */
  source: 'client' | 'worker' | 'broker'
  epoch: number
  turn_id: string | null
  /** Which attempt of its turn: 0 for its user message, then 1, 2 (a re-run). */
  attempt: number | null
  /** Partial messages: shown live, left out of a replay. */
  ephemeral: boolean
  payload: P
  created_at: string
}

export interface ContentBlock {
  type: 'text' | 'tool_use' | 'tool_result' | 'thinking' | 'image' | string
  text?: string
  id?: string
  name?: string
  input?: Record<string, unknown>
  tool_use_id?: string
  content?: unknown
  is_error?: boolean
  [k: string]: unknown
}

export interface Usage {
  input_tokens?: number
  output_tokens?: number
  cache_creation_input_tokens?: number
  cache_read_input_tokens?: number
  [k: string]: unknown
}

// ── Claude Code's messages ──────────────────────────────────────────────────────────────────

/** The first event of every worker turn: tools, MCP servers, model, permission mode. */
export interface SystemInit {
  type: 'system'
  subtype: 'init'
  session_id: string
  model: string
  tools: string[]
  mcp_servers: { name: string; status: string }[]
  permissionMode: string
  cwd: string
  [k: string]: unknown
}

export interface SystemOther {
  type: 'system'
  subtype: string
  [k: string]: unknown
}

/** One content block of a model message (Claude Code posts one event per block). */
export interface AssistantMessage {
  type: 'assistant'
  message: {
    id?: string
    role: 'assistant'
    model?: string
    content: ContentBlock[]
    usage?: Usage
  }
  parent_tool_use_id: string | null
  session_id?: string
  uuid?: string
}

/** A user message: the turn's prompt (source client), or tool results (source worker). */
export interface UserMessage {
  type: 'user'
  message: { role: 'user'; content: string | ContentBlock[] }
  parent_tool_use_id?: string | null
  session_id?: string | null
  uuid?: string
}

/** The end of a worker turn, with its cost and usage. */
export interface ResultMessage {
  type: 'result'
  subtype:
    'success' | 'error_during_execution' | 'error_max_turns' | 'error_max_budget_usd' | string
  is_error: boolean
  result?: string
  total_cost_usd?: number
  usage?: Usage
  modelUsage?: Record<string, Record<string, number>>
  num_turns?: number
  duration_ms?: number
  errors?: string[]
  [k: string]: unknown
}

/** A partial message (with `--include-partial-messages`): an Anthropic stream event. */
export interface StreamEvent {
  type: 'stream_event'
  event: {
    type: string
    index?: number
    delta?: { type: string; text?: string }
    [k: string]: unknown
  }
  parent_tool_use_id?: string | null
}

export interface ControlRequest {
  type: 'control_request'
  request_id: string
  request: {
    subtype: string
    tool_name?: string
    input?: Record<string, unknown>
    [k: string]: unknown
  }
}

export interface ControlResponse {
  type: 'control_response'
  response: { subtype: 'success' | 'error'; request_id: string; response?: unknown; error?: string }
}

// ── The broker's own ────────────────────────────────────────────────────────────────────────

export interface TurnStarted {
  type: 'turn_started'
  turn_id: string
  attempt: number
}

export interface WorkspacePulled {
  type: 'workspace_pulled'
  turn_id: string
  workspace_id: string
  files: number
  bytes: number
  ms: number
}

export interface WorkspacePushed {
  type: 'workspace_pushed'
  turn_id: string
  workspace_id: string
  files: number
  deleted: number
  bytes: number
  skipped: string[]
  ms: number
}

export interface PermissionRequest {
  type: 'permission_request'
  turn_id: string
  request_id: string
  tool_name: string
  input: Record<string, unknown>
  tool_use_id: string | null
  /** Where to POST the answer. */
  answer_url: string
}

export interface PermissionResolved {
  type: 'permission_resolved'
  turn_id: string
  request_id: string
  tool_name: string
  /** `withdrawn`: the worker stopped asking (an interrupt); nothing was answered. */
  behavior: 'allow' | 'deny' | 'withdrawn'
  decided_by: 'caller' | 'policy' | 'worker' | string
  /** What the worker was sent; null when withdrawn. */
  response: Record<string, unknown> | null
}

/** A turn failed: what went wrong, in words (the `done` event follows). */
export interface TurnError {
  type: 'error'
  turn_id: string
  message: string
}

/** The turn's result as the broker keeps it. */
export interface ResultSummary {
  subtype: string | null
  is_error: boolean
  result: string | null
  /** What Claude Code reported; 2.1.332 counts the whole conversation in it. */
  total_cost_usd: number | null
  /** What this turn cost by itself. */
  cost_usd?: number | null
  usage: Usage | null
  /** This turn's usage per model. */
  model_usage?: Record<string, Record<string, number>> | null
  num_turns: number | null
  duration_ms: number | null
}

/** The last event of every turn. */
export interface Done {
  type: 'done'
  turn_id: string
  state: 'done' | 'failed' | 'cancelled'
  error: string | null
  result: ResultSummary | null
}

export interface TurnRecovered {
  type: 'turn_recovered'
  turn_id: string
  attempt: number
  reason: string
}

export interface TurnRequeued {
  type: 'turn_requeued'
  turn_id: string
  reason: string
}

/** Any other payload (a newer Claude Code or broker may add kinds). */
export interface OtherPayload {
  type: string
  [k: string]: unknown
}

export type EventPayload =
  | SystemInit
  | SystemOther
  | AssistantMessage
  | UserMessage
  | ResultMessage
  | StreamEvent
  | ControlRequest
  | ControlResponse
  | TurnStarted
  | WorkspacePulled
  | WorkspacePushed
  | PermissionRequest
  | PermissionResolved
  | TurnError
  | Done
  | TurnRecovered
  | TurnRequeued
  | OtherPayload

/** Narrows an event by its payload type. */
export function isEventOf<T extends EventPayload['type']>(
  event: BrokerEvent,
  type: T,
): event is BrokerEvent<Extract<EventPayload, { type: T }>> {
  return event.event_type === type
}

/** The text blocks of an assistant event, joined. */
export function assistantText(event: BrokerEvent): string {
  if (event.payload.type !== 'assistant') return ''
  const content = (event.payload as AssistantMessage).message?.content ?? []
  return content
    .filter((b) => b.type === 'text' && typeof b.text === 'string')
    .map((b) => b.text)
    .join('')
}
