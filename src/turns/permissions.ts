import type { Db } from '../db/handle.ts'
import {
  expireTurnPermissions,
  insertPermission,
  lockPermission,
  resolvePermission,
} from '../db/repos/permissions.ts'
import { getTurn } from '../db/repos/turns.ts'
import { queueWebhookEvent } from '../webhooks/outbox.ts'
import type { TurnRow } from '../db/schema.ts'
import { ConflictError, NotFoundError } from '../errors.ts'
import type { EventRow } from '../events/bus.ts'
import type { EventLog } from '../events/log.ts'
import type { Logger } from '../log.ts'
import type { WorkerRun } from '../worker/transport.ts'

export type PermissionPolicy = 'bypass' | 'allowlist' | 'ask'

export interface Decision {
  /** `withdrawn`: the worker no longer asks (its control_cancel_request); nothing is sent. */
  behavior: 'allow' | 'deny' | 'withdrawn'
  message?: string
  updatedInput?: Record<string, unknown>
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

/** The control_response a worker expects for its can_use_tool request
 * (worker/PROTOCOL.md §7). */
export function controlResponse(requestId: string, response: Record<string, unknown>) {
  return {
    type: 'control_response',
    response: { subtype: 'success', request_id: requestId, response },
  }
}

/**
 * The can_use_tool relay. A worker's request becomes a pending row and a `permission_request`
 * event; an answer (from any replica) becomes a `permission_resolved` event, and the broker that
 * runs the worker forwards it as a control_response. Under the `bypass` policy the broker
 * answers at once. Pending requests wait as long as the turn may run.
 */
export function createPermissions(deps: {
  db: Db
  events: EventLog
  policy: PermissionPolicy
  log: Logger
}) {
  const { db } = deps

  async function resolve(
    sessionId: string,
    requestId: string,
    decision: Decision,
    decidedBy: string,
  ): Promise<Record<string, unknown>> {
    const row = await lockPermission(db, sessionId, requestId)
    if (!row) throw new NotFoundError(`no permission request ${requestId} in session ${sessionId}`)
    // Filled in inside the transaction, from the locked row: the stored event must carry the
    // answer, since the broker that runs the worker forwards it from the log (any replica).
    const payload: Record<string, unknown> = { type: 'permission_resolved' }
    await deps.events.append(sessionId, [{ payload }], {
      source: 'broker',
      turnId: row.turnId,
      within: async (tx) => {
        const locked = await lockPermission(tx, sessionId, requestId)
        if (!locked) throw new NotFoundError(`no permission request ${requestId}`)
        if (locked.status !== 'pending')
          throw new ConflictError(`permission request ${requestId} is already ${locked.status}`)
        const turn = await getTurn(tx, locked.turnId)
        if (!turn || turn.state !== 'running')
          throw new ConflictError(`the turn that asked (${locked.turnId}) is no longer running`)
        const response =
          decision.behavior === 'withdrawn'
            ? null
            : decision.behavior === 'allow'
              ? { behavior: 'allow', updatedInput: decision.updatedInput ?? locked.input }
              : { behavior: 'deny', message: decision.message ?? 'Denied by the broker.' }
        const status = { allow: 'allowed', deny: 'denied', withdrawn: 'withdrawn' } as const
        await resolvePermission(tx, sessionId, requestId, {
          status: status[decision.behavior],
          decidedBy,
          response,
        })
        Object.assign(payload, {
          turn_id: locked.turnId,
          request_id: requestId,
          tool_name: locked.toolName,
          behavior: decision.behavior,
          decided_by: decidedBy,
          response,
        })
      },
    })
    return payload
  }

  return {
    /** Executor hook: worker requests and resolutions of this turn. */
    async onEvent(turn: TurnRow, run: WorkerRun, event: EventRow) {
      const p = event.payload
      if (event.source === 'broker' && p.type === 'permission_resolved') {
        const response = isObject(p.response) ? p.response : null
        if (response && typeof p.request_id === 'string')
          await run.send(controlResponse(p.request_id, response))
        return
      }
      if (event.source !== 'worker') return
      // The worker gave up asking (an interrupt): the request is withdrawn, and says so.
      if (p.type === 'control_cancel_request' && typeof p.request_id === 'string') {
        await resolve(turn.sessionId, p.request_id, { behavior: 'withdrawn' }, 'worker').catch(
          (err) => {
            if (!(err instanceof ConflictError || err instanceof NotFoundError)) throw err
          },
        )
        return
      }
      if (p.type !== 'control_request') return
      const request = p.request
      if (!isObject(request) || request.subtype !== 'can_use_tool') return
      const requestId = String(p.request_id ?? '')
      const toolName = String(request.tool_name ?? '')
      const input = isObject(request.input) ? request.input : {}
      const inserted = await insertPermission(db, {
        sessionId: turn.sessionId,
        requestId,
        turnId: turn.id,
        toolName,
        input,
        toolUseId: typeof request.tool_use_id === 'string' ? request.tool_use_id : null,
      })
      if (!inserted) return
      const answerUrl = `/v1/sessions/${turn.sessionId}/permissions/${encodeURIComponent(requestId)}`
      await deps.events.append(turn.sessionId, [], {
        source: 'broker',
        turnId: turn.id,
        within: async (tx) => {
          await queueWebhookEvent(tx, 'permission.requested', turn.workspaceId, {
            session_id: turn.sessionId,
            turn_id: turn.id,
            request_id: requestId,
            tool_name: toolName,
            answer_url: answerUrl,
          })
          return [
            {
              payload: {
                type: 'permission_request',
                turn_id: turn.id,
                request_id: requestId,
                tool_name: toolName,
                input,
                tool_use_id: request.tool_use_id ?? null,
                answer_url: answerUrl,
              },
            },
          ]
        },
      })
      if (deps.policy === 'bypass')
        await resolve(turn.sessionId, requestId, { behavior: 'allow' }, 'policy')
    },

    /** A caller's answer. */
    answer: (
      sessionId: string,
      requestId: string,
      decision: Decision & { behavior: 'allow' | 'deny' },
    ) => resolve(sessionId, requestId, decision, 'caller'),

    /** After a turn: requests nobody answered can no longer be. */
    expire: (turnId: string) => expireTurnPermissions(db, turnId),
  }
}

export type Permissions = ReturnType<typeof createPermissions>
