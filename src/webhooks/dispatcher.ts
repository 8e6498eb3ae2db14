import { Webhook } from 'standardwebhooks'
import type { Db } from '../db/handle.ts'
import { claimDeliveries, recordAttempt } from '../db/repos/webhooks.ts'
import type { Logger } from '../log.ts'
import type { OutboundFetch } from '../outbound/guard.ts'

/** How long a claimed delivery is this broker's to send before another may take it. */
const CLAIM_LEASE_MS = 60_000
const BATCH = 16

/**
 * Sends the outbox: claims due deliveries (SKIP LOCKED, so each attempt goes out from one
 * broker), signs each per Standard Webhooks (`webhook-id` stays the same on every retry) and
 * posts it through the outbound guard. A 2xx delivers it; anything else retries with backoff
 * (base × 4^attempt, at most an hour apart) until `maxAgeMs` after the event, then it fails.
 */
export function createWebhookDispatcher(deps: {
  db: Db
  fetch: OutboundFetch
  pollMs: number
  retryBaseMs: number
  maxAgeMs: number
  timeoutMs: number
  log: Logger
}) {
  const { db, log } = deps
  let stopped = false
  let timer: Timer | null = null
  let running: Promise<void> | null = null
  let again = false

  const backoffMs = (attempts: number) =>
    Math.min(deps.retryBaseMs * 4 ** Math.max(0, attempts - 1), 3_600_000)

  async function deliver(d: Awaited<ReturnType<typeof claimDeliveries>>[number]) {
    const body = JSON.stringify(d.payload)
    const at = new Date()
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'cc-broker-webhooks',
      'webhook-id': d.id,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': new Webhook(d.secret).sign(d.id, at, body),
    }
    let status: number | null = null
    let error: string
    try {
      const res = await deps.fetch(d.url, {
        method: 'POST',
        headers,
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(deps.timeoutMs),
      })
      status = res.status
      await res.body?.cancel().catch(() => {})
      if (res.ok) return recordAttempt(db, d.id, { ok: true, status })
      error = `the receiver answered ${res.status}`
    } catch (err) {
      error = (err as Error).message
    }
    const attempts = d.attempts + 1
    const next = new Date(Date.now() + backoffMs(attempts))
    const giveUp = next.getTime() > d.createdAt.getTime() + deps.maxAgeMs
    if (giveUp) log.warn('webhook delivery given up', { id: d.id, attempts, error })
    await recordAttempt(db, d.id, { ok: false, status, error, retryAt: giveUp ? null : next })
  }

  async function sweep() {
    for (;;) {
      const batch = await claimDeliveries(db, BATCH, CLAIM_LEASE_MS)
      if (batch.length === 0) return
      await Promise.all(
        batch.map((d) =>
          deliver(d).catch((err) => log.error('webhook delivery failed', { err, id: d.id })),
        ),
      )
      if (stopped) return
    }
  }

  function tick() {
    if (stopped) return
    if (running) {
      again = true
      return
    }
    running = sweep()
      .catch((err) => log.error('webhook sweep failed', { err }))
      .finally(() => {
        running = null
        if (again) {
          again = false
          tick()
        }
      })
  }

  return {
    start() {
      timer = setInterval(tick, deps.pollMs)
      tick()
    },
    /** Something was queued here: send it now rather than at the next poll. */
    wake: tick,
    async stop() {
      stopped = true
      if (timer) clearInterval(timer)
      await running
    },
  }
}

export type WebhookDispatcher = ReturnType<typeof createWebhookDispatcher>
