import type { Db } from '../db/handle.ts'
import { insertDeliveries } from '../db/repos/webhooks.ts'

export const WEBHOOK_EVENT_TYPES = [
  'turn.done',
  'turn.failed',
  'turn.cancelled',
  'permission.requested',
  'budget.exhausted',
  'schedule.fired',
] as const
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number]

/**
 * Puts one event in the outbox for every subscription that wants it, in the transaction `db`
 * is (so it is queued exactly once, with the change it reports). The body follows the
 * Standard Webhooks payload shape: `{type, timestamp, data}`, with ids and a small summary.
 */
export function queueWebhookEvent(
  db: Db,
  type: WebhookEventType,
  workspaceId: string,
  data: Record<string, unknown>,
): Promise<number> {
  return insertDeliveries(db, {
    type,
    workspaceId,
    payload: {
      type,
      timestamp: new Date().toISOString(),
      data: { workspace_id: workspaceId, ...data },
    },
  })
}
