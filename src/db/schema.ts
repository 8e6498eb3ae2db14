import {
  bigint,
  bigserial,
  boolean,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core'

const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow()

export const sessions = pgTable(
  'sessions',
  {
    id: text('id').primaryKey(),
    workspaceId: text('workspace_id').notNull(),
    title: text('title').notNull().default(''),
    status: text('status').notNull().default('idle'),
    epoch: integer('epoch').notNull().default(0),
    externalId: text('external_id'),
    source: text('source').notNull().default('api'),
    tags: jsonb('tags').$type<string[]>().notNull().default([]),
    // Claude Code's own session UUID: `--session-id` on the first turn, `--resume` after.
    claudeSessionId: uuid('claude_session_id').notNull().defaultRandom(),
    archived: boolean('archived').notNull().default(false),
    /** Spend limit in USD across the session's turns; null: none. */
    budgetUsd: doublePrecision('budget_usd'),
    /** The session this one was forked from (its conversation was copied at the first turn). */
    forkedFrom: text('forked_from'),
    /** The source's Claude Code session the first turn resumes with `--fork-session`. */
    forkSourceClaudeSessionId: uuid('fork_source_claude_session_id'),
    createdAt: createdAt(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('sessions_workspace_id_created_at_idx').on(t.workspaceId, t.createdAt),
    index('sessions_created_at_id_idx').on(t.createdAt, t.id),
    // A caller's own id for a session (an IM thread, a ticket) maps to one session per workspace.
    uniqueIndex('sessions_workspace_id_external_id_key').on(t.workspaceId, t.externalId),
  ],
)

export const sessionEvents = pgTable(
  'session_events',
  {
    seq: bigserial('seq', { mode: 'number' }).primaryKey(),
    sessionId: text('session_id')
      .notNull()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    eventId: text('event_id').notNull(),
    eventType: text('event_type').notNull(),
    source: text('source').notNull(),
    epoch: integer('epoch').notNull().default(0),
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    ephemeral: boolean('ephemeral').notNull().default(false),
    turnId: text('turn_id'),
    /**
     * The attempt of its turn the event belongs to (a turn re-run after its broker died runs
     * again from the start): 0 before the first, then 1, 2; null for events of no turn.
     */
    attempt: integer('attempt'),
    createdAt: createdAt(),
  },
  (t) => [
    // Duplicate batches (a worker retrying after a lost 200) must be stored once.
    uniqueIndex('session_events_session_id_event_id_key').on(t.sessionId, t.eventId),
    index('session_events_session_id_seq_idx').on(t.sessionId, t.seq),
  ],
)

export const eventDeliveries = pgTable(
  'event_deliveries',
  {
    sessionId: text('session_id')
      .notNull()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    eventId: text('event_id').notNull(),
    status: text('status').notNull(),
    epoch: integer('epoch').notNull(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ name: 'event_deliveries_pkey', columns: [t.sessionId, t.eventId] })],
)

export const sessionWorkers = pgTable(
  'session_workers',
  {
    sessionId: text('session_id')
      .notNull()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    epoch: integer('epoch').notNull(),
    state: text('state').notNull().default('starting'),
    externalMetadata: jsonb('external_metadata')
      .$type<Record<string, unknown>>()
      .notNull()
      .default({}),
    requiresActionDetails: jsonb('requires_action_details').$type<Record<string, unknown> | null>(),
    lastHeartbeatAt: timestamp('last_heartbeat_at', { withTimezone: true }),
    /** When the generation ended (its worker is gone): its token opens nothing any more. */
    closedAt: timestamp('closed_at', { withTimezone: true }),
    registeredAt: timestamp('registered_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ name: 'session_workers_pkey', columns: [t.sessionId, t.epoch] })],
)

export const internalEvents = pgTable(
  'internal_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    sessionId: text('session_id')
      .notNull()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    eventType: text('event_type').notNull(),
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    isCompaction: boolean('is_compaction').notNull().default(false),
    agentId: text('agent_id'),
    epoch: integer('epoch').notNull().default(0),
    createdAt: createdAt(),
  },
  (t) => [index('internal_events_session_id_id_idx').on(t.sessionId, t.id)],
)

export const turns = pgTable(
  'turns',
  {
    id: text('id').primaryKey(),
    sessionId: text('session_id')
      .notNull()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    workspaceId: text('workspace_id').notNull(),
    /** queued | running | done | failed | cancelled */
    state: text('state').notNull().default('queued'),
    userEventId: text('user_event_id').notNull(),
    imChannelId: text('im_channel_id'),
    imUserId: text('im_user_id'),
    metadata: jsonb('metadata').$type<Record<string, unknown>>().notNull().default({}),
    /** How many times a broker started this turn (a crash recovery re-queues it once). */
    attempts: integer('attempts').notNull().default(0),
    leaseOwner: text('lease_owner'),
    leaseExpiresAt: timestamp('lease_expires_at', { withTimezone: true }),
    workerEpoch: integer('worker_epoch'),
    workerPid: integer('worker_pid'),
    cancelRequested: boolean('cancel_requested').notNull().default(false),
    error: text('error'),
    result: jsonb('result').$type<Record<string, unknown> | null>(),
    enqueuedAt: timestamp('enqueued_at', { withTimezone: true }).notNull().defaultNow(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
  },
  (t) => [
    index('turns_session_id_state_enqueued_at_idx').on(t.sessionId, t.state, t.enqueuedAt),
    index('turns_session_id_enqueued_at_id_idx').on(t.sessionId, t.enqueuedAt, t.id),
    index('turns_state_enqueued_at_idx').on(t.state, t.enqueuedAt),
  ],
)

export const permissions = pgTable(
  'permissions',
  {
    sessionId: text('session_id')
      .notNull()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    /** The worker's `request_id` of its can_use_tool control request. */
    requestId: text('request_id').notNull(),
    turnId: text('turn_id').notNull(),
    toolName: text('tool_name').notNull(),
    input: jsonb('input').$type<Record<string, unknown>>().notNull().default({}),
    toolUseId: text('tool_use_id'),
    /** pending | allowed | denied | withdrawn (by the worker) | expired */
    status: text('status').notNull().default('pending'),
    decidedBy: text('decided_by'),
    response: jsonb('response').$type<Record<string, unknown> | null>(),
    createdAt: createdAt(),
    resolvedAt: timestamp('resolved_at', { withTimezone: true }),
  },
  (t) => [
    primaryKey({ name: 'permissions_pkey', columns: [t.sessionId, t.requestId] }),
    index('permissions_turn_id_idx').on(t.turnId),
  ],
)

export const scheduledTasks = pgTable(
  'scheduled_tasks',
  {
    id: text('id').primaryKey(),
    sessionId: text('session_id')
      .notNull()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    workspaceId: text('workspace_id').notNull(),
    prompt: text('prompt').notNull(),
    /** A cron expression, or null for a one-shot task at `runAt`. */
    cron: text('cron'),
    runAt: timestamp('run_at', { withTimezone: true }),
    timezone: text('timezone').notNull().default('UTC'),
    /** active | done | cancelled */
    state: text('state').notNull().default('active'),
    nextRunAt: timestamp('next_run_at', { withTimezone: true }),
    imChannelId: text('im_channel_id'),
    imUserId: text('im_user_id'),
    runs: integer('runs').notNull().default(0),
    lastRunAt: timestamp('last_run_at', { withTimezone: true }),
    createdByTurn: text('created_by_turn'),
    createdAt: createdAt(),
  },
  (t) => [
    index('scheduled_tasks_state_next_run_at_idx').on(t.state, t.nextRunAt),
    index('scheduled_tasks_session_id_idx').on(t.sessionId),
  ],
)

export const scheduleRuns = pgTable(
  'schedule_runs',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    taskId: text('task_id')
      .notNull()
      .references(() => scheduledTasks.id, { onDelete: 'cascade' }),
    scheduledFor: timestamp('scheduled_for', { withTimezone: true }).notNull(),
    turnId: text('turn_id'),
    error: text('error'),
    createdAt: createdAt(),
  },
  (t) => [
    // A due time fires once, however many brokers look at it.
    uniqueIndex('schedule_runs_task_id_scheduled_for_key').on(t.taskId, t.scheduledFor),
  ],
)

/** What one worker `result` cost: written as soon as the result is stored, once per event. */
export const turnUsage = pgTable(
  'turn_usage',
  {
    sessionId: text('session_id')
      .notNull()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    /** The worker `result` event's id. */
    eventId: text('event_id').notNull(),
    turnId: text('turn_id').notNull(),
    workspaceId: text('workspace_id').notNull(),
    costUsd: doublePrecision('cost_usd').notNull().default(0),
    inputTokens: integer('input_tokens').notNull().default(0),
    outputTokens: integer('output_tokens').notNull().default(0),
    cacheReadInputTokens: integer('cache_read_input_tokens').notNull().default(0),
    cacheCreationInputTokens: integer('cache_creation_input_tokens').notNull().default(0),
    /** Per model: { input_tokens, output_tokens, cache_*_input_tokens, cost_usd }. */
    modelUsage: jsonb('model_usage').$type<Record<string, ModelUsage>>().notNull().default({}),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ name: 'turn_usage_pkey', columns: [t.sessionId, t.eventId] }),
    index('turn_usage_workspace_id_created_at_idx').on(t.workspaceId, t.createdAt),
  ],
)

export interface ModelUsage {
  input_tokens: number
  output_tokens: number
  cache_read_input_tokens: number
  cache_creation_input_tokens: number
  cost_usd: number
}

export const workspaceBudgets = pgTable('workspace_budgets', {
  workspaceId: text('workspace_id').primaryKey(),
  budgetUsd: doublePrecision('budget_usd').notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
})

export const webhooks = pgTable('webhooks', {
  id: text('id').primaryKey(),
  url: text('url').notNull(),
  eventTypes: jsonb('event_types').$type<string[]>().notNull(),
  /** Only events of this workspace; null: every workspace. */
  workspaceId: text('workspace_id'),
  /** `whsec_<base64>` (Standard Webhooks); shown once, kept to sign. */
  secret: text('secret').notNull(),
  createdAt: createdAt(),
})

/** The outbox: one row per event and subscription, claimed with SKIP LOCKED. */
export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    /** The stable `webhook-id` of every attempt. */
    id: text('id').primaryKey(),
    webhookId: text('webhook_id')
      .notNull()
      .references(() => webhooks.id, { onDelete: 'cascade' }),
    eventType: text('event_type').notNull(),
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    /** pending | delivered | failed */
    status: text('status').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).notNull().defaultNow(),
    lastStatus: integer('last_status'),
    lastError: text('last_error'),
    createdAt: createdAt(),
    deliveredAt: timestamp('delivered_at', { withTimezone: true }),
  },
  (t) => [
    index('webhook_deliveries_status_next_attempt_at_idx').on(t.status, t.nextAttemptAt),
    index('webhook_deliveries_webhook_id_created_at_idx').on(t.webhookId, t.createdAt),
  ],
)

export type SessionRow = typeof sessions.$inferSelect
export type SessionEventRow = typeof sessionEvents.$inferSelect
export type SessionWorkerRow = typeof sessionWorkers.$inferSelect
export type InternalEventRow = typeof internalEvents.$inferSelect
export type TurnRow = typeof turns.$inferSelect
export type PermissionRow = typeof permissions.$inferSelect
export type ScheduledTaskRow = typeof scheduledTasks.$inferSelect
export type TurnUsageRow = typeof turnUsage.$inferSelect
export type WebhookRow = typeof webhooks.$inferSelect
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect

/**
 * A counter per workspace, raised by every push that changed its store: a warm worker whose
 * workspace moved on since it last looked (another session pushed) is not reused.
 */
export const workspaceRevisions = pgTable('workspace_revisions', {
  workspaceId: text('workspace_id').primaryKey(),
  revision: bigint('revision', { mode: 'number' }).notNull().default(0),
})

/**
 * Which broker keeps a session's Claude Code process alive between turns, and until when: the
 * claim of a queued turn of that session leaves it to that broker for a moment.
 */
export const warmWorkers = pgTable('warm_workers', {
  sessionId: text('session_id')
    .primaryKey()
    .references(() => sessions.id, { onDelete: 'cascade' }),
  owner: text('owner').notNull(),
  until: timestamp('until', { withTimezone: true }).notNull(),
})
