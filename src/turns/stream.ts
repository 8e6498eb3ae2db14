import type { Db } from '../db/handle.ts'
import { listEventsSince } from '../db/repos/events.ts'
import type { Bus, EventRow } from '../events/bus.ts'
import { frameText, sseResponse } from '../events/sse.ts'
import { eventJson } from '../sessions/client-events.ts'
import { isTerminal } from './outcome.ts'

const PAGE = 500
const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
  connection: 'close',
}
const isDone = (e: EventRow) => e.source === 'broker' && e.eventType === 'done'

/** A turn's events as SSE: replay after the cursor, then live, closing after its `done`. */
export function createTurnStreams(deps: { db: Db; bus: Bus; keepaliveMs: number }) {
  return {
    async open(
      turn: { id: string; sessionId: string; state: string },
      since: number,
      signal: AbortSignal,
    ): Promise<Response> {
      // A finished turn has nothing after its done event: a cursor already past it would wait
      // forever for one, so that stream ends at once.
      if (
        isTerminal(turn.state) &&
        (await listEventsSince(deps.db, turn.sessionId, since, 1, { turnId: turn.id })).length === 0
      )
        return new Response(': connected\n\n', { headers: SSE_HEADERS })
      return sseResponse({
        bus: deps.bus,
        sessionId: turn.sessionId,
        filter: (e) => e.turnId === turn.id,
        afterSeq: since,
        replay: (after) =>
          listEventsSince(deps.db, turn.sessionId, after, PAGE, { turnId: turn.id }),
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
