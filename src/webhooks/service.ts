import type { Db } from '../db/handle.ts'
import {
  deleteWebhook,
  getWebhook,
  insertWebhook,
  listDeliveries,
  listWebhooks,
} from '../db/repos/webhooks.ts'
import { BadRequestError, NotFoundError } from '../errors.ts'
import { newWebhookId } from '../ids.ts'
import {
  isAddressAllowed,
  isIpLiteral,
  isNameAllowed,
  parseAddress,
  parseFetchAllow,
} from '../outbound/addresses.ts'
import type { WebhookEventType } from './outbox.ts'

/** A Standard Webhooks secret: `whsec_` and 24 random bytes in base64. */
const newSecret = () =>
  `whsec_${Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString('base64')}`

/** Subscriptions: created (the secret shown once), listed, deleted, and their delivery logs. */
export function createWebhookService(deps: { db: Db; allow: readonly string[] }) {
  const { db } = deps
  const rules = parseFetchAllow(deps.allow)

  /** What can be told at once: the scheme, and a host that is an address or localhost. */
  function checkUrl(raw: string) {
    const url = URL.parse(raw)
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:'))
      throw new BadRequestError(`url: expected an http: or https: URL, got "${raw}"`)
    const host = url.hostname.toLowerCase()
    const literal = isIpLiteral(host)
    const refused = literal
      ? !isAddressAllowed(parseAddress(host.replace(/^\[(.*)\]$/, '$1')), rules)
      : (host === 'localhost' || host.endsWith('.localhost')) && !isNameAllowed(host, rules)
    if (refused)
      throw new BadRequestError(
        `url: ${url.host} is a loopback or private address; webhooks go to public addresses ` +
          'unless CCBROKER_WEBHOOK_ALLOW names it',
      )
  }

  async function require(id: string) {
    const row = await getWebhook(db, id)
    if (!row) throw new NotFoundError(`webhook ${id} not found`)
    return row
  }

  return {
    async create(input: { url: string; eventTypes: WebhookEventType[]; workspaceId?: string }) {
      checkUrl(input.url)
      return insertWebhook(db, {
        id: newWebhookId(),
        url: input.url,
        eventTypes: [...new Set(input.eventTypes)],
        workspaceId: input.workspaceId ?? null,
        secret: newSecret(),
      })
    },
    list: () => listWebhooks(db),
    get: require,
    async remove(id: string) {
      if (!(await deleteWebhook(db, id))) throw new NotFoundError(`webhook ${id} not found`)
    },
    async deliveries(id: string, before: string | undefined, limit: number) {
      await require(id)
      return listDeliveries(db, id, { before, limit })
    },
  }
}

export type WebhookService = ReturnType<typeof createWebhookService>
