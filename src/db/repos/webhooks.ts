import { and, desc, eq, inArray, lte, sql } from 'drizzle-orm'
import type { Db } from '../handle.ts'
import { webhookDeliveries, webhooks, type WebhookDeliveryRow, type WebhookRow } from '../schema.ts'

export type NewWebhook = typeof webhooks.$inferInsert

export async function insertWebhook(db: Db, values: NewWebhook): Promise<WebhookRow> {
  const rows = await db.insert(webhooks).values(values).returning()
  return rows[0]!
}

export async function getWebhook(db: Db, id: string): Promise<WebhookRow | null> {
  const rows = await db.select().from(webhooks).where(eq(webhooks.id, id))
  return rows[0] ?? null
}

export async function listWebhooks(db: Db): Promise<WebhookRow[]> {
  return db.select().from(webhooks).orderBy(desc(webhooks.createdAt), desc(webhooks.id))
}

export async function deleteWebhook(db: Db, id: string): Promise<boolean> {
  const rows = await db.delete(webhooks).where(eq(webhooks.id, id)).returning({ id: webhooks.id })
  return rows.length > 0
}

/**
 * One outbox row per subscription that wants this event (its type, and its workspace or none),
 * in the caller's transaction: the event and its deliveries commit together, once.
 */
export async function insertDeliveries(
  db: Db,
  event: { type: string; workspaceId: string; payload: Record<string, unknown> },
): Promise<number> {
  const rows = await db
    .insert(webhookDeliveries)
    .select(
      db
        .select({
          id: sql<string>`'msg_' || replace(gen_random_uuid()::text, '-', '')`.as('id'),
          webhookId: webhooks.id,
          eventType: sql<string>`${event.type}`.as('event_type'),
          payload: sql`${JSON.stringify(event.payload)}::jsonb`.as('payload'),
          status: sql<string>`'pending'`.as('status'),
          attempts: sql<number>`0`.as('attempts'),
          nextAttemptAt: sql`now()`.as('next_attempt_at'),
          lastStatus: sql`null::int`.as('last_status'),
          lastError: sql`null::text`.as('last_error'),
          createdAt: sql`now()`.as('created_at'),
          deliveredAt: sql`null::timestamptz`.as('delivered_at'),
        })
        .from(webhooks)
        .where(
          and(
            sql`${webhooks.eventTypes} ? ${event.type}`,
            sql`(${webhooks.workspaceId} is null or ${webhooks.workspaceId} = ${event.workspaceId})`,
          ),
        ),
    )
    .returning({ id: webhookDeliveries.id })
  return rows.length
}

/**
 * Claims up to `limit` due deliveries (SKIP LOCKED: another broker claiming at the same moment
 * takes other rows) and moves their next attempt `leaseMs` ahead, so that once this commits no
 * one else picks them up while this broker sends them. A broker that dies mid-send leaves them
 * to be sent again when the lease runs out: at least once.
 */
export async function claimDeliveries(
  db: Db,
  limit: number,
  leaseMs: number,
): Promise<(WebhookDeliveryRow & { url: string; secret: string })[]> {
  return db.transaction(async (tx) => {
    const due = await tx
      .select({ id: webhookDeliveries.id })
      .from(webhookDeliveries)
      .where(
        and(
          eq(webhookDeliveries.status, 'pending'),
          lte(webhookDeliveries.nextAttemptAt, sql`now()`),
        ),
      )
      .orderBy(webhookDeliveries.nextAttemptAt)
      .limit(limit)
      .for('update', { skipLocked: true })
    if (due.length === 0) return []
    const ids = due.map((d) => d.id)
    await tx
      .update(webhookDeliveries)
      .set({ nextAttemptAt: sql`now() + ${`${leaseMs} milliseconds`}::interval` })
      .where(inArray(webhookDeliveries.id, ids))
    const rows = await tx
      .select()
      .from(webhookDeliveries)
      .innerJoin(webhooks, eq(webhooks.id, webhookDeliveries.webhookId))
      .where(inArray(webhookDeliveries.id, ids))
    return rows.map((r) => ({
      ...r.webhook_deliveries,
      url: r.webhooks.url,
      secret: r.webhooks.secret,
    }))
  })
}

/** The outcome of one attempt: delivered, or tried again at `retryAt`, or given up (null). */
export async function recordAttempt(
  db: Db,
  id: string,
  outcome:
    | { ok: true; status: number }
    | { ok: false; status: number | null; error: string; retryAt: Date | null },
): Promise<void> {
  await db
    .update(webhookDeliveries)
    .set(
      outcome.ok
        ? {
            status: 'delivered',
            attempts: sql`${webhookDeliveries.attempts} + 1`,
            lastStatus: outcome.status,
            lastError: null,
            deliveredAt: sql`now()`,
          }
        : {
            status: outcome.retryAt ? 'pending' : 'failed',
            attempts: sql`${webhookDeliveries.attempts} + 1`,
            lastStatus: outcome.status,
            lastError: outcome.error,
            ...(outcome.retryAt ? { nextAttemptAt: outcome.retryAt } : {}),
          },
    )
    .where(eq(webhookDeliveries.id, id))
}

/** A subscription's deliveries, newest first; `before` is the id of the last of a page. */
export async function listDeliveries(
  db: Db,
  webhookId: string,
  opts: { before?: string; limit: number },
): Promise<WebhookDeliveryRow[]> {
  return db
    .select()
    .from(webhookDeliveries)
    .where(
      and(
        eq(webhookDeliveries.webhookId, webhookId),
        opts.before
          ? sql`(${webhookDeliveries.createdAt}, ${webhookDeliveries.id}) < (select created_at, id from webhook_deliveries where id = ${opts.before})`
          : undefined,
      ),
    )
    .orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.id))
    .limit(opts.limit)
}
