import type { Db } from '../db/handle.ts'
import { findEventsByIds } from '../db/repos/events.ts'
import { listInternalEvents } from '../db/repos/internal-events.ts'
import type { EventLog } from '../events/log.ts'
import type { SessionService } from '../sessions/service.ts'
import type { WorkerStreams } from '../sessions/worker-streams.ts'
import {
  baseArgs,
  baseEnv,
  type WorkerEnvConfig,
  mcpConfigArgs,
  userMessageFor,
} from './claude-args.ts'
import { spawnClaude } from './spawn.ts'
import type { TurnSpec, WorkerRun, WorkerTransport } from './transport.ts'

/**
 * CCR v2 (PROTOCOL.md §1, §11): a new epoch and token per turn, `--sdk-url` at this
 * broker; the worker pulls the turn's user message from its stream and posts its events back.
 * Internal events rebuild the conversation on `--resume`.
 */
export function createCcrTransport(deps: {
  config: WorkerEnvConfig
  bin: string
  db: Db
  sessions: SessionService
  events: EventLog
  /** This broker's own URL: the worker talks to the broker that started it. */
  localUrl: () => string
  streams: WorkerStreams
}): WorkerTransport {
  return {
    name: 'ccr',
    async start(spec: TurnSpec): Promise<WorkerRun> {
      const bridge = await deps.sessions.bridge(spec.session.id, {
        ttlSeconds: spec.tokenTtlSeconds,
      })
      await spec.onEpoch(bridge.workerEpoch)
      const resume =
        (
          await listInternalEvents(deps.db, spec.session.id, {
            subagents: false,
            afterId: 0,
            limit: 1,
          })
        ).length > 0
      const args = [
        '--print',
        '--sdk-url',
        `${deps.localUrl()}/v1/sessions/${spec.session.id}`,
        ...baseArgs(spec, resume),
        ...(await mcpConfigArgs(spec, bridge.workerJwt)),
      ]
      const env = {
        ...baseEnv(deps.config, spec),
        CLAUDE_CODE_USE_CCR_V2: '1',
        CLAUDE_CODE_WORKER_EPOCH: String(bridge.workerEpoch),
        CLAUDE_CODE_SESSION_ACCESS_TOKEN: bridge.workerJwt,
        CLAUDE_CODE_POST_FOR_SESSION_INGRESS_V2: '1',
      }
      // The worker reads the message from its stream; a re-run needs it there under a new uuid.
      const message = userMessageFor(spec)
      if (message.resent)
        await deps.events.append(spec.session.id, [{ payload: message.payload }], {
          source: 'client',
          turnId: spec.turn.id,
        })
      const worker = spawnClaude({
        bin: deps.bin,
        args,
        env,
        cwd: spec.dirs.cwd,
        stdin: false,
        log: spec.log,
      })
      let turnId = spec.turn.id
      const send = async (payload: Record<string, unknown>) => {
        await deps.events.append(spec.session.id, [{ payload }], { source: 'client', turnId })
      }
      const control = (subtype: string) =>
        send({
          type: 'control_request',
          request_id: crypto.randomUUID(),
          request: { subtype },
        })
      return {
        pid: worker.pid,
        epoch: bridge.workerEpoch,
        exited: worker.exited,
        stderrTail: worker.stderrTail,
        interrupt: () => control('interrupt'),
        finish: () => control('end_session'),
        async nextTurn(next) {
          turnId = next.turn.id
          for (const request of next.controls)
            await send({ type: 'control_request', request_id: crypto.randomUUID(), request })
          // The message is in the log already, but the worker's stream passed it by while the
          // turn was queued: hand it to the open stream, or (none open) log it again, as a re-run
          // does, for the stream to carry.
          const message = userMessageFor(next)
          if (!message.resent) {
            const rows = await findEventsByIds(deps.db, spec.session.id, [next.turn.userEventId])
            if (rows.length > 0 && deps.streams.send(spec.session.id, bridge.workerEpoch, rows))
              return
          }
          await send({ ...message.payload, uuid: crypto.randomUUID() })
        },
        send,
        signal: worker.signal,
      }
    },
  }
}
