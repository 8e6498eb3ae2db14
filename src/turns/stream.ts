import type { Db } from '../db/handle.ts'
import { listEventsSince } from '../db/repos/events.ts'
import type { Bus, EventRow } from '../events/bus.ts'
import { frameText, RETRY_MS, sseResponse } from '../events/sse.ts'
import { eventJson } from '../sessions/client-events.ts'
import { isTerminal } from './outcome.ts'

const PAGE = 500
const isDone = (e: EventRow) => e.source === 'broker' && e.eventType === 'done'

/** A turn's events as SSE: replay after the cursor, then live, closing after its `done`. */
export function createTurnStreams(deps: { db: Db; bus: Bus; keepaliveMs: number }) {
  return {
    async open(
      turn: { id: string; sessionId: string; state: string },
      since: number,
      signal: AbortSignal,
    ): Promise<Response> {
      // A finished turn has nothing after its done event: 204 is the event-stream way to say
      // "stop reconnecting" to a client whose cursor is already past it.
      if (
        isTerminal(turn.state) &&
        (
          await listEventsSince(deps.db, turn.sessionId, since, 1, {
            turnId: turn.id,
            durable: true,
          })
        ).length === 0
      )
        return new Response(null, { status: 204 })
      return sseResponse({
        bus: deps.bus,
        sessionId: turn.sessionId,
        filter: (e) => e.turnId === turn.id,
        afterSeq: since,
        replay: (after) =>
          listEventsSince(deps.db, turn.sessionId, after, PAGE, { turnId: turn.id, durable: true }),
        replayPageSize: PAGE,
        frame: (e) => frameText(null, e.seq, eventJson(e)),
        isLast: isDone,
        retryMs: RETRY_MS,
        keepaliveMs: deps.keepaliveMs,
        signal,
      })
    },
  }
}

export type TurnStreams = ReturnType<typeof createTurnStreams>
