import type { Json } from './options.ts'

/** How a turn's output leaves the process: one implementation per transport. */
export interface Io {
  /** Worker events (system, assistant, user, result, control_*), in order. */
  emit(payloads: Json | Json[], ephemeral?: boolean): Promise<void>
  /** A worker state patch (CCR v2 PUT /worker); stdio has none. */
  state(patch: Json): Promise<void>
  /** A delivery report of a client event (CCR v2); stdio has none. */
  delivery(eventId: string, status: 'received' | 'processing' | 'processed'): Promise<void>
  /** A transcript entry: the local session file (stdio) or internal events (CCR v2). */
  transcript(entry: Json): Promise<void>
  /** Resolves once everything emitted so far has left the process. */
  flush(): Promise<void>
}
