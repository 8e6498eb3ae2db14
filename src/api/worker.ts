import { Type } from '@sinclair/typebox'
import { Elysia, t } from 'elysia'
import { workerGuard } from '../auth/worker-guard.ts'
import { cursorFrom } from '../events/sse.ts'
import type { WorkerIngress } from '../sessions/worker-ingress.ts'
import { AnyObject, bounded, errors, Int, sseResponses } from './schemas.ts'
import { auth } from './security.ts'

const Epoch = Int({ minimum: 0, description: 'The worker epoch (CLAUDE_CODE_WORKER_EPOCH)' })
const Obj = AnyObject()
const Payload = Type.Object({ type: Type.String({ minLength: 1 }) }, { additionalProperties: true })
const Ok = t.Object({})
/**
 * Claude Code may add fields in any release: worker bodies never reject unknown keys
 * (a permanent 4xx would have it retry forever, worker/PROTOCOL.md §2).
 */
const Open = <P extends Parameters<typeof t.Object>[0]>(props: P) =>
  t.Object(props, { additionalProperties: true })
const writeErrors = errors(400, 401, 403, 404, 409, 413)
const tags = ['worker']
/** A client event as a worker's stream carries it (clientEnvelope in sessions/worker-ingress.ts). */
const ClientEvent = t.Object({
  event_id: t.String(),
  sequence_num: Int(),
  event_type: t.Literal('client_event'),
  source: t.String(),
  payload: Obj,
  created_at: t.String(),
})
const clientEvents = { data: ClientEvent, event: 'client_event' }

/** The eight CCR v2 worker endpoints (worker/PROTOCOL.md §2), guarded by the worker JWT. */
export const workerRoutes = (deps: { ingress: WorkerIngress; tokenKey: Uint8Array }) =>
  new Elysia({ prefix: '/v1/sessions/:id/worker', detail: { security: auth.workerToken } })
    .use(workerGuard(deps.tokenKey))
    .get('', async ({ worker }) => ({ worker: await deps.ingress.getWorker(worker) }), {
      response: { 200: t.Object({ worker: Obj }), ...errors(401, 403, 404, 409) },
      detail: { summary: 'Worker state (restores model and permission mode on resume)', tags },
    })
    .put(
      '',
      async ({ worker, body }) => {
        await deps.ingress.putWorker(worker, body.worker_epoch, {
          state: body.worker_status,
          externalMetadata: body.external_metadata,
          requiresActionDetails: body.requires_action_details,
        })
        return {}
      },
      {
        body: Open({
          worker_epoch: Epoch,
          worker_status: t.Optional(t.String({ minLength: 1, maxLength: 64 })),
          external_metadata: t.Optional(Obj),
          requires_action_details: t.Optional(t.Union([Obj, t.Null()])),
        }),
        response: { 200: Ok, ...writeErrors },
        detail: { summary: 'Patch worker state; external_metadata merges key by key', tags },
      },
    )
    .get(
      '/events/stream',
      ({ worker, query, headers, request, server }) => {
        server?.timeout(request, 0)
        bounded('from_sequence_num', query.from_sequence_num, 0, Number.MAX_SAFE_INTEGER, 0)
        const cursor = cursorFrom(headers['last-event-id'], query.from_sequence_num)
        return deps.ingress.stream(worker, cursor, request.signal)
      },
      {
        query: Open({ from_sequence_num: t.Optional(t.Integer()) }),
        detail: {
          summary: 'Client events for the worker (SSE, `event: client_event`, `id: <seq>`)',
          description:
            'Replays after from_sequence_num / Last-Event-ID; a worker with no cursor gets what ' +
            'no earlier worker consumed. Keepalive comments every 15 s.',
          tags,
          responses: sseResponses(clientEvents, 400, 401, 403, 404, 409),
        },
      },
    )
    .post(
      '/events',
      async ({ worker, body }) => {
        await deps.ingress.postEvents(worker, body.worker_epoch, body.events)
        return {}
      },
      {
        body: Open({
          worker_epoch: Epoch,
          events: t.Array(Open({ payload: Payload, ephemeral: t.Optional(t.Boolean()) }), {
            maxItems: 100,
          }),
        }),
        response: { 200: Ok, ...writeErrors },
        detail: {
          summary: 'Append worker events (≤100); committed before 200, duplicates by uuid dropped',
          tags,
        },
      },
    )
    .post(
      '/events/delivery',
      async ({ worker, body }) => {
        await deps.ingress.postDelivery(
          worker,
          body.worker_epoch,
          body.updates.map((u) => ({ eventId: u.event_id, status: u.status })),
        )
        return {}
      },
      {
        body: Open({
          worker_epoch: Epoch,
          updates: t.Array(
            Open({
              event_id: t.String({ minLength: 1 }),
              status: t.Union([
                t.Literal('received'),
                t.Literal('processing'),
                t.Literal('processed'),
              ]),
            }),
            { maxItems: 1000 },
          ),
        }),
        response: { 200: Ok, ...writeErrors },
        detail: {
          summary: 'Delivery reports of client events (received, processing, processed)',
          tags,
        },
      },
    )
    .post(
      '/heartbeat',
      async ({ worker, body }) => {
        await deps.ingress.heartbeat(worker, body.worker_epoch)
        return {}
      },
      {
        body: Open({ worker_epoch: Epoch, session_id: t.Optional(t.String()) }),
        response: { 200: Ok, ...writeErrors },
        detail: { summary: 'Worker liveness (every 20 s)', tags },
      },
    )
    .post(
      '/internal-events',
      async ({ worker, body }) => {
        await deps.ingress.postInternalEvents(
          worker,
          body.worker_epoch,
          body.events.map((e) => ({
            payload: e.payload,
            isCompaction: e.is_compaction,
            agentId: e.agent_id,
          })),
        )
        return {}
      },
      {
        body: Open({
          worker_epoch: Epoch,
          events: t.Array(
            Open({
              payload: Obj,
              is_compaction: t.Optional(t.Boolean()),
              agent_id: t.Optional(t.Union([t.String(), t.Null()])),
            }),
            { maxItems: 1000 },
          ),
        }),
        response: { 200: Ok, ...writeErrors },
        detail: { summary: 'Transcript entries, kept for --resume', tags },
      },
    )
    .get(
      '/internal-events',
      ({ worker, query }) =>
        deps.ingress.listInternalEvents(
          worker,
          query.subagents ?? false,
          Number(query.cursor ?? 0),
        ),
      {
        query: Open({
          subagents: t.Optional(t.BooleanString()),
          cursor: t.Optional(t.String({ pattern: '^[0-9]{1,18}$' })),
        }),
        response: {
          200: t.Object({
            data: t.Array(Obj),
            next_cursor: t.Union([t.String(), t.Null()]),
          }),
          ...errors(400, 401, 403),
        },
        detail: { summary: 'Transcript entries for --resume, paged', tags },
      },
    )
