/** The broker's own failures: each knows its HTTP status and a stable code. */
export class BrokerError extends Error {
  readonly status: number = 500
  readonly code: string = 'internal'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'BrokerError'
  }
}

export class BadRequestError extends BrokerError {
  override readonly status = 400
  override readonly code = 'bad_request'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'BadRequestError'
  }
}

export class UnauthorizedError extends BrokerError {
  override readonly status = 401
  override readonly code = 'unauthorized'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'UnauthorizedError'
  }
}

export class ForbiddenError extends BrokerError {
  override readonly status = 403
  override readonly code = 'forbidden'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ForbiddenError'
  }
}

export class NotFoundError extends BrokerError {
  override readonly status = 404
  override readonly code = 'not_found'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'NotFoundError'
  }
}

export class ConflictError extends BrokerError {
  override readonly status = 409
  override readonly code = 'conflict'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ConflictError'
  }
}

/** What a budget that stops a turn says: which, its amount, what is spent, how to raise it. */
export interface BudgetStanding {
  scope: 'session' | 'workspace'
  id: string
  budget_usd: number
  spent_usd: number
  remaining_usd: number
  raise: { method: string; path: string; body: Record<string, string> }
}

/** A turn refused because its session's or workspace's budget is spent. */
export class BudgetExhaustedError extends BrokerError {
  override readonly status = 409
  override readonly code = 'budget_exhausted'
  constructor(readonly budget: BudgetStanding) {
    super(budgetMessage(budget))
    this.name = 'BudgetExhaustedError'
  }
}

export const budgetMessage = (b: BudgetStanding) =>
  `${b.scope} ${b.id} has spent $${b.spent_usd.toFixed(4)} of its $${b.budget_usd} budget; ` +
  `raise it with ${b.raise.method} ${b.raise.path} {"budget_usd": <more>}`

/** A write from a worker whose epoch was superseded by a newer bridge. */
export class StaleEpochError extends BrokerError {
  override readonly status = 409
  override readonly code = 'stale_epoch'
  constructor(got: number, current: number) {
    super(`worker_epoch ${got} is stale (current ${current})`)
    this.name = 'StaleEpochError'
  }
}

/** A worker token of a generation that has ended (its worker is gone): it opens nothing. */
export class GenerationClosedError extends BrokerError {
  override readonly status = 401
  override readonly code = 'generation_closed'
  constructor(epoch: number) {
    super(`worker generation ${epoch} has ended; its token is no longer valid`)
    this.name = 'GenerationClosedError'
  }
}

export class PayloadTooLargeError extends BrokerError {
  override readonly status = 413
  override readonly code = 'too_large'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'PayloadTooLargeError'
  }
}

/** A request body in another format than JSON, on a route that only takes JSON. */
export class UnsupportedMediaTypeError extends BrokerError {
  override readonly status = 415
  override readonly code = 'unsupported_media_type'
  constructor(message: string) {
    super(message)
    this.name = 'UnsupportedMediaTypeError'
  }
}

/** A request for a Host this broker does not serve (a DNS-rebinding page, a wrong name). */
export class MisdirectedRequestError extends BrokerError {
  override readonly status = 421
  override readonly code = 'misdirected'
  constructor(message: string) {
    super(message)
    this.name = 'MisdirectedRequestError'
  }
}

export class QueueFullError extends BrokerError {
  override readonly status = 429
  override readonly code = 'queue_full'
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message)
    this.name = 'QueueFullError'
  }
}

/** A path given by a worker or a caller that would leave its root directory. */
export class PathEscapeError extends BrokerError {
  override readonly status = 400
  override readonly code = 'path_escape'
  constructor(message: string) {
    super(message)
    this.name = 'PathEscapeError'
  }
}

/** A remote service the broker depends on (executor registry, IM bridge, store) failed. */
export class UpstreamError extends BrokerError {
  override readonly status = 502
  override readonly code = 'upstream'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'UpstreamError'
  }
}

/**
 * A remote store refused a request as such (a malformed request, a name or a key it does not
 * accept): retrying would get the same answer, so it is reported, not waited out.
 */
export class StoreRefusedError extends BrokerError {
  override readonly status = 502
  override readonly code = 'store_refused'
  constructor(message: string) {
    super(message)
    this.name = 'StoreRefusedError'
  }
}

/** A part the request needs is not available on this broker (e.g. no Claude Code binary). */
export class UnavailableError extends BrokerError {
  override readonly status = 503
  override readonly code = 'unavailable'
  constructor(message: string) {
    super(message)
    this.name = 'UnavailableError'
  }
}

/**
 * An outbound fetch the broker refused (scheme, address) or whose address did not answer; both
 * carry the same message, so a worker cannot probe internal hosts through the broker.
 */
export class OutboundRefusedError extends UpstreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'OutboundRefusedError'
  }
}
