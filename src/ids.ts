/** Session ids are time-ordered (UUIDv7 hex), so paging by id is paging by creation time. */
export const newSessionId = () => `cse_${Bun.randomUUIDv7().replaceAll('-', '')}`
export const newTurnId = () => `turn_${Bun.randomUUIDv7().replaceAll('-', '')}`
export const isSessionId = (id: string) => /^cse_[A-Za-z0-9_-]{1,64}$/.test(id)
export const newWebhookId = () => `wh_${Bun.randomUUIDv7().replaceAll('-', '')}`
export const newDeliveryId = () => `msg_${Bun.randomUUIDv7().replaceAll('-', '')}`
