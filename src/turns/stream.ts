import type { Db } from '../db/open.ts'
import { listEventsSince } from '../db/repos/events.ts'
import type { Bus, EventRow } from '../events/bus.ts'
import { frameText, sseResponse } from '../events/sse.ts'
import { eventJson } from '../sessions/client-events.ts'

const PAGE = 500
const isDone = (e: EventRow) => e.source === 'broker' && e.eventType === 'done'

/** A turn's events as SSE: replay after the cursor, then live, closing after its `done`. */
export function createTurnStreams(deps: { db: Db; bus: Bus; keepaliveMs: number }) {
  return {
    open(turn: { id: string; sessionId: string }, since: number, signal: AbortSignal): Response {
      return sseResponse({
        bus: deps.bus,
        sessionId: turn.sessionId,
        filter: (e) => e.turnId === turn.id,
        afterSeq: since,
        replay: (after) => listEventsSince(deps.db, turn.sessionId, after, PAGE, { turnId: turn.id }),
        replayPageSize: PAGE,
        frame: (e) => frameText(null, e.seq, eventJson(e)),
        isLast: isDone,
        keepaliveMs: deps.keepaliveMs,
        signal,
      })
    },
  }
}

export type TurnStreams = ReturnType<typeof createTurnStreams>
