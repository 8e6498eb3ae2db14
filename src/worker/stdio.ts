import { access } from 'node:fs/promises'
import { whileUnavailable } from '../db/unavailable.ts'
import { GenerationClosedError, StaleEpochError } from '../errors.ts'

/** How long a stdio worker's output waits for an away database before it is dropped. */
const OUTAGE_WAIT_MS = 60_000
import type { AppendItem, EventLog } from '../events/log.ts'
import type { SessionService } from '../sessions/service.ts'
import {
  baseArgs,
  baseEnv,
  type WorkerEnvConfig,
  mcpConfigArgs,
  transcriptPath,
  userMessageFor,
} from './claude-args.ts'
import { createCumulativeDeltas } from './cumulative-deltas.ts'
import { spawnClaude } from './spawn.ts'
import type { TurnSpec, WorkerRun, WorkerTransport } from './transport.ts'

/**
 * stdio stream-json (current Claude Code): the user message on stdin, every stdout line into
 * the log exactly as if the worker had posted it. Continuity comes from the transcript in the
 * session's config directory, found by `--resume` under the same working directory path.
 */
export function createStdioTransport(deps: {
  config: WorkerEnvConfig
  bin: string
  sessions: SessionService
  events: EventLog
}): WorkerTransport {
  return {
    name: 'stdio',
    async start(spec: TurnSpec): Promise<WorkerRun> {
      // A new epoch fences any worker of an earlier generation still posting (and gives the
      // turn a token for its MCP server).
      const bridge = await deps.sessions.bridge(spec.session.id, {
        ttlSeconds: spec.tokenTtlSeconds,
      })
      await spec.onEpoch(bridge.workerEpoch)
      const transcript = transcriptPath(
        spec.dirs.configDir,
        spec.dirs.cwd,
        spec.session.claudeSessionId,
      )
      const exists = (path: string) =>
        access(path).then(
          () => true,
          () => false,
        )
      const resume = await exists(transcript)
      // A fork's first turn: the source's transcript was put beside where this one's will be.
      const forkOf = spec.session.forkSourceClaudeSessionId
      const fork =
        !resume &&
        forkOf !== null &&
        (await exists(transcriptPath(spec.dirs.configDir, spec.dirs.cwd, forkOf)))
      const args = [
        '-p',
        ...baseArgs(spec, resume, fork ? forkOf : undefined),
        ...(await mcpConfigArgs(spec, bridge.workerJwt)),
      ]
      const env = {
        ...baseEnv(deps.config, spec),
        CLAUDE_CODE_SESSION_ACCESS_TOKEN: bridge.workerJwt,
      }

      // Lines are appended in order, batched while an append is in flight. `flushing` is cleared
      // in the same step as the last emptiness check, so no line can be left behind by a drain
      // that is just ending; once fenced, lines are dropped (the log refuses them anyway).
      // The turn the process serves now: a warm worker serves its session's turns one by one.
      let turnId = spec.turn.id
      let log = spec.log
      let pending: AppendItem[] = []
      const cumulative = createCumulativeDeltas()
      let flushing: Promise<void> | null = null
      let fenced = false
      const drain = async () => {
        for (;;) {
          if (pending.length === 0 || fenced) {
            pending = []
            flushing = null
            return
          }
          const batch = pending
          pending = []
          try {
            // Worker output waits out a database outage rather than being dropped.
            await whileUnavailable(
              () =>
                deps.events.append(spec.session.id, batch, {
                  source: 'worker',
                  epoch: bridge.workerEpoch,
                  turnId,
                }),
              { deadlineMs: OUTAGE_WAIT_MS },
            )
          } catch (err) {
            if (err instanceof StaleEpochError || err instanceof GenerationClosedError) {
              fenced = true
              log.warn('stdio worker fenced; stopping it', {
                err: err.message,
              })
              worker.signal('SIGTERM')
            } else log.error('could not append worker output', { err })
          }
        }
      }
      /** The drain in progress, started when there is something to append; null when idle. */
      const flush = () => {
        // With lines pending, drain() reaches its first await before this assignment.
        if (!flushing && pending.length > 0 && !fenced) flushing = drain()
        return flushing
      }
      const onLine = async (line: string) => {
        let payload: unknown
        try {
          payload = JSON.parse(line)
        } catch {
          log.info('worker stdout', { line })
          return
        }
        if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return
        if (fenced) return
        const p = cumulative(payload as Record<string, unknown>)
        pending.push({ payload: p, ephemeral: p.type === 'stream_event' })
        const running = flush()
        // Back-pressure: stop reading stdout while 100 lines wait for the database.
        if (pending.length >= 100) await running
      }
      const worker = spawnClaude({
        bin: deps.bin,
        args,
        env,
        cwd: spec.dirs.cwd,
        stdin: true,
        log: spec.log,
        onStdoutLine: onLine,
      })
      const stdin = worker.stdin!
      let stdinOpen = true
      const write = async (payload: Record<string, unknown>) => {
        if (!stdinOpen) return
        try {
          stdin.write(JSON.stringify(payload) + '\n')
          await stdin.flush()
        } catch (err) {
          log.warn('could not write to worker stdin', { err })
        }
      }
      const sendMessage = async (turn: TurnSpec['turn'], userPayload: Record<string, unknown>) => {
        const message = userMessageFor({ turn, userPayload })
        if (message.resent)
          await deps.events.append(spec.session.id, [{ payload: message.payload }], {
            source: 'client',
            turnId: turn.id,
          })
        await write({ ...message.payload, session_id: spec.session.claudeSessionId })
      }
      await sendMessage(spec.turn, spec.userPayload)
      /** Until every line read so far is in the log. */
      const drained = async () => {
        for (let running = flush(); running; running = flush()) await running
      }
      const exited = worker.exited.then(async (code) => {
        await drained()
        return code
      })
      return {
        pid: worker.pid,
        epoch: bridge.workerEpoch,
        exited,
        stderrTail: worker.stderrTail,
        // cancel_queued: a message the CLI has read but not started yet is cancelled too (a
        // plain interrupt would leave it to run); it then ends with command_lifecycle
        // `cancelled` instead of a result.
        interrupt: () =>
          write({
            type: 'control_request',
            request_id: crypto.randomUUID(),
            request: { subtype: 'interrupt', cancel_queued: true },
          }),
        async finish() {
          if (!stdinOpen) return
          stdinOpen = false
          try {
            await stdin.end()
          } catch {
            // Already closed by the process.
          }
        },
        async nextTurn(next) {
          // Lines of the last turn still waiting for the database keep their turn.
          await drained()
          turnId = next.turn.id
          log = next.log
          for (const request of next.controls)
            await write({ type: 'control_request', request_id: crypto.randomUUID(), request })
          await sendMessage(next.turn, next.userPayload)
        },
        send: write,
        signal: worker.signal,
      }
    },
  }
}
