import { sql } from 'drizzle-orm'
import type { Database, Db } from '../db/handle.ts'
import {
  appendEvents,
  insertEvents,
  listEventsSince,
  maxEventSeq,
  type EventFilter,
  type NewSessionEvent,
} from '../db/repos/events.ts'
import {
  insertSession,
  lockSessionAtEpoch,
  type LockedSession,
  type NewSession,
} from '../db/repos/sessions.ts'
import { GenerationClosedError, NotFoundError, StaleEpochError } from '../errors.ts'
import type { Bus, EventRow } from './bus.ts'
import type { Dedup } from './dedup.ts'

export const NOTIFY_CHANNEL = 'cc_broker_events'

export type EventSource = 'client' | 'worker' | 'broker'

export interface AppendItem {
  payload: Record<string, unknown>
  ephemeral?: boolean
  /** Its turn's attempt, when it is not the turn's current one (a hand-back's). */
  attempt?: number
}

export interface AppendOptions {
  source: EventSource
  /** Worker writes: the batch's `worker_epoch`; it must be the session's current epoch. */
  epoch?: number
  turnId?: string | null
  /** Without `turnId`: tag the events with the turn the worker's epoch serves (looked up). */
  turnOfEpoch?: boolean
  /**
   * Runs inside the append's transaction, after the session lock and before the insert. Items it
   * answers are appended after the given ones: events decided under the lock (a turn's end).
   */
  within?: (tx: Db, session: LockedSession) => Promise<AppendItem[] | void>
  /** Creates the session first when it does not exist, in the same transaction. */
  ensureSession?: NewSession
}

/** No seq the bus may take as the one before a batch: it catches up from the log instead. */
const PREV_UNKNOWN = -1

export interface AppendResult {
  /** Rows stored by this call, in seq order. */
  inserted: EventRow[]
  /** Event ids that were already in the log (a retried batch); not stored again. */
  duplicates: string[]
}

/** The event id of a payload: its `uuid` (worker/PROTOCOL.md §12), given one when it has none. */
export function ensureUuid(payload: Record<string, unknown>): string {
  if (typeof payload.uuid !== 'string' || payload.uuid.length === 0)
    payload.uuid = crypto.randomUUID()
  return payload.uuid as string
}

export function eventTypeOf(payload: Record<string, unknown>): string {
  return typeof payload.type === 'string' && payload.type ? payload.type : 'unknown'
}

/**
 * The session event log: append (epoch fence, dedup, seq, commit, then publish) and reads.
 * Appends to one session serialize on the session row, so seqs are committed in order.
 */
export function createEventLog(deps: {
  database: Database
  bus: Bus
  dedup: Dedup
  /** This broker's id in NOTIFY payloads, so it can skip its own (already published). */
  origin: string
  /** Rows this process committed (for metrics), after the commit. */
  onAppended?: (rows: EventRow[]) => void
}) {
  const { database, bus, dedup } = deps
  const db = database.db

  const rowOf = (sessionId: string, item: AppendItem, opts: AppendOptions): NewSessionEvent => ({
    sessionId,
    eventId: ensureUuid(item.payload),
    eventType: eventTypeOf(item.payload),
    source: opts.source,
    epoch: opts.epoch ?? 0,
    payload: item.payload,
    ephemeral: item.ephemeral === true,
    turnId: opts.turnId ?? null,
    // The turn's attempt as it stands when the row is written, in the same statement.
    attempt:
      item.attempt ??
      (opts.turnId ? sql`(select attempts from turns where id = ${opts.turnId})` : null),
  })

  async function append(
    sessionId: string,
    items: AppendItem[],
    opts: AppendOptions,
  ): Promise<AppendResult> {
    const duplicates: string[] = []
    const freshItems: AppendItem[] = []
    const freshIds: string[] = []
    const seen = new Set<string>()
    for (const item of items) {
      const eventId = ensureUuid(item.payload)
      if (seen.has(eventId) || dedup.has(sessionId, eventId)) {
        duplicates.push(eventId)
        continue
      }
      seen.add(eventId)
      freshItems.push(item)
      freshIds.push(eventId)
    }
    if (!opts.within && !opts.ensureSession) {
      // The common case (worker and client events): one statement, one round trip.
      const out = await appendEvents(database.query, {
        sessionId,
        source: opts.source,
        epoch: opts.epoch ?? null,
        turnId: opts.turnId ?? null,
        turnOfEpoch: opts.turnOfEpoch,
        rows: freshItems.map((item, i) => ({
          eventId: freshIds[i]!,
          eventType: eventTypeOf(item.payload),
          payload: item.payload,
          ephemeral: item.ephemeral === true,
          attempt: item.attempt ?? null,
        })),
        notify:
          database.driver === 'postgres' ? { channel: NOTIFY_CHANNEL, origin: deps.origin } : null,
      })
      if (out.kind === 'missing') throw new NotFoundError(`session ${sessionId} not found`)
      if (out.kind === 'stale') throw new StaleEpochError(opts.epoch!, out.sessionEpoch)
      if (out.kind === 'closed') throw new GenerationClosedError(opts.epoch!)
      // The statement's max(seq) is read in its snapshot, taken before it waited for the session
      // lock: a batch committed meanwhile (here or on another replica) is not in it. So the bus
      // is not told a previous seq to trust; it reads what it has not published from the log.
      return published(sessionId, freshIds, seen, [], PREV_UNKNOWN, out.inserted, duplicates)
    }
    const fresh = freshItems.map((item) => rowOf(sessionId, item, opts))
    const { inserted, prevSeq, decided } = await db.transaction(async (t) => {
      if (opts.ensureSession) await insertSession(t, opts.ensureSession)
      const session = await lockSessionAtEpoch(t, sessionId, opts.epoch)
      const decided = ((await opts.within?.(t, session)) ?? []).map((i) =>
        rowOf(sessionId, i, opts),
      )
      const rows = [...fresh, ...decided]
      if (rows.length === 0) return { inserted: [] as EventRow[], prevSeq: 0, decided }
      const prevSeq = await maxEventSeq(t, sessionId)
      const inserted = await insertEvents(t, rows)
      const last = inserted.at(-1)
      if (last && database.driver === 'postgres')
        await t.execute(
          sql`select pg_notify(${NOTIFY_CHANNEL}, ${JSON.stringify({ s: sessionId, l: last.seq, o: deps.origin })})`,
        )
      return { inserted, prevSeq, decided }
    })
    return published(sessionId, freshIds, seen, decided, prevSeq, inserted, duplicates)
  }

  /** After the commit: what was a duplicate, the dedup set, the live fan-out, the metrics. */
  function published(
    sessionId: string,
    freshIds: string[],
    seen: Set<string>,
    decided: NewSessionEvent[],
    prevSeq: number,
    inserted: EventRow[],
    duplicates: string[],
  ): AppendResult {
    const insertedIds = new Set(inserted.map((r) => r.eventId))
    for (const id of freshIds) if (!insertedIds.has(id)) duplicates.push(id)
    dedup.add(sessionId, [...seen, ...decided.map((r) => r.eventId)])
    bus.publish(sessionId, prevSeq, inserted)
    if (inserted.length > 0) deps.onAppended?.(inserted)
    return { inserted, duplicates }
  }

  return {
    append,
    since: (sessionId: string, since: number, limit: number, filter?: EventFilter) =>
      listEventsSince(db, sessionId, since, limit, filter),
    maxSeq: (sessionId: string) => maxEventSeq(db, sessionId),
  }
}

export type EventLog = ReturnType<typeof createEventLog>
