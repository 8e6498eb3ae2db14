import { Elysia, t } from 'elysia'
import { apiKeyGuard } from '../auth/api-key.ts'
import type { WebhookDeliveryRow, WebhookRow } from '../db/schema.ts'
import { WEBHOOK_EVENT_TYPES } from '../webhooks/outbox.ts'
import type { WebhookService } from '../webhooks/service.ts'
import { bounded, errors } from './schemas.ts'
import { auth } from './security.ts'
import { WORKSPACE_ID } from './sessions.ts'

const EventType = t.UnionEnum([...WEBHOOK_EVENT_TYPES])

const Webhook = t.Object({
  id: t.String(),
  url: t.String(),
  event_types: t.Array(t.String()),
  workspace_id: t.Union([t.String(), t.Null()]),
  created_at: t.String(),
})

const Delivery = t.Object({
  id: t.String({ description: 'The webhook-id header of every attempt' }),
  event_type: t.String(),
  status: t.UnionEnum(['pending', 'delivered', 'failed']),
  attempts: t.Integer(),
  last_status: t.Union([t.Integer(), t.Null()], { description: 'The receiver’s last HTTP status' }),
  last_error: t.Union([t.String(), t.Null()]),
  next_attempt_at: t.Union([t.String(), t.Null()]),
  created_at: t.String(),
  delivered_at: t.Union([t.String(), t.Null()]),
  payload: t.Unknown(),
})

const webhookJson = (w: WebhookRow): typeof Webhook.static => ({
  id: w.id,
  url: w.url,
  event_types: w.eventTypes,
  workspace_id: w.workspaceId,
  created_at: w.createdAt.toISOString(),
})

const deliveryJson = (d: WebhookDeliveryRow): typeof Delivery.static => ({
  id: d.id,
  event_type: d.eventType,
  status: d.status as typeof Delivery.static.status,
  attempts: d.attempts,
  last_status: d.lastStatus,
  last_error: d.lastError,
  next_attempt_at: d.status === 'pending' ? d.nextAttemptAt.toISOString() : null,
  created_at: d.createdAt.toISOString(),
  delivered_at: d.deliveredAt?.toISOString() ?? null,
  payload: d.payload,
})

const tags = ['webhooks']

export const webhooksRoutes = (deps: { webhooks: WebhookService; apiKeys: readonly string[] }) =>
  new Elysia({ prefix: '/v1/webhooks', detail: { security: auth.apiKey } })
    .use(apiKeyGuard(deps.apiKeys))
    .post(
      '',
      async ({ body, set }) => {
        const w = await deps.webhooks.create({
          url: body.url,
          eventTypes: body.event_types,
          workspaceId: body.workspace_id,
        })
        set.status = 201
        return { webhook: webhookJson(w), secret: w.secret }
      },
      {
        body: t.Object({
          url: t.String({ minLength: 1, maxLength: 2000, description: 'http(s) URL to POST to' }),
          event_types: t.Array(EventType, { minItems: 1, maxItems: WEBHOOK_EVENT_TYPES.length }),
          workspace_id: t.Optional(WORKSPACE_ID),
        }),
        response: {
          201: t.Object({
            webhook: Webhook,
            secret: t.String({
              description:
                'whsec_…: verifies the webhook-signature header (Standard Webhooks); shown only here',
            }),
          }),
          ...errors(400, 401),
        },
        detail: { summary: 'Subscribe a URL to events (the secret is shown once)', tags },
      },
    )
    .get('', async () => ({ data: (await deps.webhooks.list()).map(webhookJson) }), {
      response: { 200: t.Object({ data: t.Array(Webhook) }), ...errors(401) },
      detail: { summary: 'List subscriptions, newest first (no secrets)', tags },
    })
    .get(
      '/:id',
      async ({ params }) => ({ webhook: webhookJson(await deps.webhooks.get(params.id)) }),
      {
        response: { 200: t.Object({ webhook: Webhook }), ...errors(401, 404) },
        detail: { summary: 'A subscription (no secret)', tags },
      },
    )
    .delete(
      '/:id',
      async ({ params, set }) => {
        await deps.webhooks.remove(params.id)
        set.status = 204
        return ''
      },
      {
        response: { 204: t.Any(), ...errors(401, 404) },
        detail: { summary: 'Unsubscribe (its pending deliveries are dropped)', tags },
      },
    )
    .get(
      '/:id/deliveries',
      async ({ params, query }) => {
        const limit = bounded('limit', query.limit, 1, 500, 50)
        const rows = await deps.webhooks.deliveries(params.id, query.cursor, limit + 1)
        const page = rows.slice(0, limit)
        return {
          data: page.map(deliveryJson),
          next_cursor: rows.length > limit ? page.at(-1)!.id : null,
        }
      },
      {
        query: t.Object(
          { cursor: t.Optional(t.String()), limit: t.Optional(t.Integer()) },
          { additionalProperties: true },
        ),
        response: {
          200: t.Object({ data: t.Array(Delivery), next_cursor: t.Union([t.String(), t.Null()]) }),
          ...errors(400, 401, 404),
        },
        detail: {
          summary: 'A subscription’s deliveries, newest first: status, attempts, last error',
          tags,
        },
      },
    )
