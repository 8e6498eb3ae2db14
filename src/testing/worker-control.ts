/**
 * The test side of the fake worker's `control` scenario: a loopback HTTP server the fake asks,
 * at each turn, what the turn does. A turn can be held mid-way until the test releases it, so a
 * test that needs "the worker is mid-turn" waits for a condition instead of racing a delay.
 */

/** What the fake tells the control server about a turn it is running. */
export interface ControlTurn {
  /** The broker's session id (CCBROKER_SESSION_ID) and turn id of the worker's first turn. */
  session_id: string | null
  turn_id: string | null
  /** Claude Code's own session UUID. */
  claude_session_id: string
  pid: number
  /** The user message's text, and how many prompts the conversation had before it. */
  text: string
  history: number
}

/** One thing a scripted worker does during a turn, before its reply. */
export type WorkerStep =
  /** An assistant message with this text. */
  | { text: string }
  /**
   * The same, streamed first as partial text (`stream_event` frames) when the broker asks; with
   * `hold`, the worker stops after the last partial frame until the test releases it (as a
   * `{ hold: true }` step), then finishes the message.
   */
  | { stream: string; hold?: boolean }
  /**
   * The worker waits mid-turn until the test releases it: `pause(sessionId)` catches this, and
   * the release's `steps` run here. With no pause waiting, it goes on at once.
   */
  | { hold: true }
  /** A tool call and its result, as the model and Claude Code would make them. */
  | { tool: string; input?: Record<string, unknown>; output?: string; isError?: boolean }
  /** A real call of one of the broker's MCP tools (`remote_bash`, `send_message`, …). */
  | { mcp: string; args?: Record<string, unknown> }
  /** A tool that needs permission: the worker asks the broker and goes on with the answer. */
  | { permission: string; input?: Record<string, unknown> }

export interface ControlAnswer {
  /** The assistant's reply; the fake's echo when absent. */
  reply?: string
  /** What the worker does first, in order. */
  steps?: WorkerStep[]
  /** After the steps, the turn ends with an error result with this message. */
  fail?: string
  /** After the steps, the worker process exits with this code (a crash). */
  exit?: number
  /** Before the reply, this many assistant events in one batch (one write of many events). */
  burst?: number
  /** What the turn costs in USD (its result's cost and modelUsage); default 0.0123. */
  cost_usd?: number
}

/** A turn held at its start: `arrived` once its worker asks, then waiting for `release`. */
export interface HeldTurn {
  readonly arrived: Promise<ControlTurn>
  release(answer?: ControlAnswer): void
}

export interface WorkerControl extends AsyncDisposable {
  /** FAKE_CLAUDE_CONTROL_URL for the fake. */
  url: string
  /** Every turn the fake asked about, in order. */
  turns: ControlTurn[]
  /** Holds the next turn of `sessionId` (a broker session id) until released. */
  hold(sessionId: string): HeldTurn
  /** Holds the next hold step of a turn of `sessionId` until released. */
  pause(sessionId: string): HeldTurn
  stop(): Promise<void>
}

/**
 * Starts the control server. `answer` decides each turn nobody holds; its `signal` aborts when
 * the worker stops asking (the turn was interrupted, or the worker died).
 */
export async function startWorkerControl(
  answer: (
    turn: ControlTurn,
    signal: AbortSignal,
  ) => ControlAnswer | Promise<ControlAnswer> = () => ({}),
): Promise<WorkerControl> {
  const turns: ControlTurn[] = []
  type Waiting = Map<string, { arrive(t: ControlTurn): void; released: Promise<ControlAnswer> }[]>
  const holds: Waiting = new Map()
  const pauses: Waiting = new Map()
  const wait = (map: Waiting, sessionId: string): HeldTurn => {
    const arrived = Promise.withResolvers<ControlTurn>()
    const released = Promise.withResolvers<ControlAnswer>()
    const queue = map.get(sessionId) ?? []
    queue.push({ arrive: arrived.resolve, released: released.promise })
    map.set(sessionId, queue)
    return { arrived: arrived.promise, release: (a = {}) => released.resolve(a) }
  }

  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    // A held turn may wait for as long as the test takes.
    idleTimeout: 0,
    async fetch(request) {
      const url = new URL(request.url)
      if (request.method !== 'POST' || !['/turn', '/hold'].includes(url.pathname))
        return Response.json({ error: 'not found' }, { status: 404 })
      const turn = (await request.json()) as ControlTurn
      const waiting = url.pathname === '/hold' ? pauses : holds
      const held = turn.session_id ? waiting.get(turn.session_id)?.shift() : undefined
      if (url.pathname === '/hold') {
        // A hold step mid-turn: it waits for a pause of its session, or goes on at once.
        if (!held) return Response.json({})
        held.arrive(turn)
        return Response.json(await held.released)
      }
      turns.push(turn)
      if (held) {
        held.arrive(turn)
        return Response.json(await held.released)
      }
      try {
        return Response.json(await answer(turn, request.signal))
      } catch (err) {
        // The fake fails the turn with this, so the test sees its own error in the turn's.
        return new Response(`the scripted reply threw: ${(err as Error)?.stack ?? err}`, {
          status: 500,
        })
      }
    },
  })

  const stop = async () => {
    await server.stop(true)
  }
  return {
    url: `http://127.0.0.1:${server.port}`,
    turns,
    hold: (sessionId) => wait(holds, sessionId),
    pause: (sessionId) => wait(pauses, sessionId),
    stop,
    [Symbol.asyncDispose]: stop,
  }
}
