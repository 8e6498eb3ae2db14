import type { WorkerClaims } from '../auth/worker-token.ts'
import type { Db } from '../db/handle.ts'
import {
  listEventsSince,
  listUnconsumedClientEvents,
  upsertDeliveries,
} from '../db/repos/events.ts'
import { insertInternalEvents, listInternalEvents } from '../db/repos/internal-events.ts'
import { lockSessionAtEpoch } from '../db/repos/sessions.ts'
import {
  getWorker,
  patchWorker,
  touchWorkerHeartbeat,
  type WorkerPatch,
} from '../db/repos/workers.ts'
import { ConflictError, NotFoundError } from '../errors.ts'
import type { Bus, EventRow } from '../events/bus.ts'
import { eventTypeOf, type AppendItem, type EventLog } from '../events/log.ts'
import { frameText, sseResponse } from '../events/sse.ts'
import type { Generations } from './generations.ts'
import type { WorkerStreams } from './worker-streams.ts'

const REPLAY_PAGE = 500
const INTERNAL_PAGE = 1000

/** The envelope of worker/PROTOCOL.md §3: what Claude Code reads from each `client_event` frame. */
export const clientEnvelope = (e: EventRow) => ({
  event_id: e.eventId,
  sequence_num: e.seq,
  event_type: 'client_event',
  source: e.source,
  payload: e.payload,
  created_at: e.createdAt.toISOString(),
})

/**
 * What a worker's stream carries: client events, but for a worker that serves a turn only that
 * turn's and untagged ones — a queued turn's message must wait for its turn. A warm worker
 * serves its session's turns one after another: the turn is the one it serves now.
 */
const forWorker = (turnId: () => string | null) => (e: EventRow) => {
  if (e.source !== 'client') return false
  const current = turnId()
  return current === null || e.turnId === null || e.turnId === current
}

/** The broker side of the CCR v2 worker protocol (worker/PROTOCOL.md §2), one method per endpoint. */
export function createWorkerIngress(deps: {
  db: Db
  events: EventLog
  bus: Bus
  generations: Generations
  keepaliveMs: number
  /** The turn a worker of this epoch runs, to tag its events (null outside turns). */
  turnIdFor?: (sessionId: string, epoch: number) => Promise<string | null>
  /** The same, from memory only: undefined when this replica does not know. */
  knownTurnIdFor?: (sessionId: string, epoch: number) => string | undefined
  /** Where open streams are registered, so a warm worker's next message can be handed over. */
  streams?: WorkerStreams
}) {
  const { db } = deps

  /** A body's `worker_epoch` must be its token's: a worker cannot write for another epoch. */
  function checkTokenEpoch(claims: WorkerClaims, epoch: number) {
    if (epoch !== claims.epoch)
      throw new ConflictError(
        `worker_epoch ${epoch} does not match the token's epoch ${claims.epoch}`,
      )
  }

  /** Runs `fn` while holding the session row, after checking the batch's epoch. */
  async function fenced<T>(claims: WorkerClaims, epoch: number, fn: (tx: Db) => Promise<T>) {
    checkTokenEpoch(claims, epoch)
    return db.transaction(async (t) => {
      await lockSessionAtEpoch(t, claims.sid, epoch)
      return fn(t)
    })
  }

  return {
    /** 409 for a stale epoch, 401 for an ended generation: what every worker request checks. */
    requireCurrent: (claims: WorkerClaims) => fenced(claims, claims.epoch, async () => {}),

    async getWorker(claims: WorkerClaims) {
      return fenced(claims, claims.epoch, async (tx) => {
        const row = await getWorker(tx, claims.sid, claims.epoch)
        if (!row) throw new NotFoundError(`no worker registered for epoch ${claims.epoch}`)
        return {
          session_id: row.sessionId,
          worker_epoch: row.epoch,
          worker_status: row.state,
          external_metadata: row.externalMetadata,
          requires_action_details: row.requiresActionDetails ?? null,
          last_heartbeat_at: row.lastHeartbeatAt?.toISOString() ?? null,
          registered_at: row.registeredAt.toISOString(),
        }
      })
    },

    async putWorker(claims: WorkerClaims, epoch: number, patch: WorkerPatch) {
      await fenced(claims, epoch, (tx) => patchWorker(tx, claims.sid, epoch, patch))
    },

    async postEvents(claims: WorkerClaims, epoch: number, items: AppendItem[]) {
      // The event log fences the session epoch itself, under the lock it appends with.
      checkTokenEpoch(claims, epoch)
      // A turn this replica does not know is looked up in the append's own statement.
      const known = deps.knownTurnIdFor?.(claims.sid, epoch)
      return deps.events.append(claims.sid, items, {
        source: 'worker',
        epoch,
        turnId: known ?? null,
        turnOfEpoch: known === undefined,
      })
    },

    async postDelivery(
      claims: WorkerClaims,
      epoch: number,
      updates: { eventId: string; status: string }[],
    ) {
      await fenced(claims, epoch, (tx) => upsertDeliveries(tx, claims.sid, epoch, updates))
    },

    async heartbeat(claims: WorkerClaims, epoch: number) {
      await fenced(claims, epoch, (tx) => touchWorkerHeartbeat(tx, claims.sid, epoch))
    },

    async postInternalEvents(
      claims: WorkerClaims,
      epoch: number,
      items: {
        payload: Record<string, unknown>
        isCompaction?: boolean
        agentId?: string | null
      }[],
    ) {
      await fenced(claims, epoch, (tx) =>
        insertInternalEvents(
          tx,
          items.map((i) => ({
            sessionId: claims.sid,
            eventType: eventTypeOf(i.payload),
            payload: i.payload,
            isCompaction: i.isCompaction === true,
            agentId: i.agentId ?? null,
            epoch,
          })),
        ),
      )
    },

    async listInternalEvents(claims: WorkerClaims, subagents: boolean, cursor: number) {
      const rows = await listInternalEvents(db, claims.sid, {
        subagents,
        afterId: cursor,
        limit: INTERNAL_PAGE,
      })
      return {
        data: rows.map((r) => ({
          payload: r.payload,
          ...(r.agentId ? { agent_id: r.agentId } : {}),
          ...(r.isCompaction ? { is_compaction: true } : {}),
        })),
        next_cursor: rows.length === INTERNAL_PAGE ? String(rows.at(-1)!.id) : null,
      }
    },

    /**
     * The worker's SSE stream of client events. With a cursor: everything after it. Without
     * one (a fresh process): what no earlier worker consumed (PROTOCOL.md §3), then live.
     */
    async stream(claims: WorkerClaims, cursor: number | null, signal: AbortSignal) {
      // Tracked before the check: a generation that ends in between still ends this stream.
      const ended = new AbortController()
      const untrack = deps.generations.track(claims.sid, claims.epoch, () => ended.abort())
      try {
        await fenced(claims, claims.epoch, async () => {})
      } catch (err) {
        untrack()
        throw err
      }
      const turnId = (await deps.turnIdFor?.(claims.sid, claims.epoch)) ?? undefined
      let unregister = () => {}
      return sseResponse({
        onClose: () => {
          untrack()
          unregister()
        },
        onOpen: (send) => {
          if (deps.streams) unregister = deps.streams.add(claims.sid, claims.epoch, send)
        },
        bus: deps.bus,
        sessionId: claims.sid,
        filter: forWorker(() => deps.knownTurnIdFor?.(claims.sid, claims.epoch) ?? turnId ?? null),
        afterSeq: cursor ?? 0,
        replay: (after) =>
          cursor === null
            ? listUnconsumedClientEvents(db, claims.sid, after, REPLAY_PAGE, turnId)
            : listEventsSince(db, claims.sid, after, REPLAY_PAGE, {
                source: 'client',
                turnOrUntagged: turnId,
              }),
        replayPageSize: REPLAY_PAGE,
        frame: (e) => frameText('client_event', e.seq, clientEnvelope(e)),
        keepaliveMs: deps.keepaliveMs,
        signal: AbortSignal.any([signal, ended.signal]),
      })
    },
  }
}

export type WorkerIngress = ReturnType<typeof createWorkerIngress>
