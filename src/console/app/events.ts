/** An event as the session stream carries it (see the broker's eventJson). */
export interface ConsoleEvent {
  event_id: string
  sequence_num: number
  event_type: string
  source: 'client' | 'worker' | 'broker'
  turn_id: string | null
  attempt: number | null
  ephemeral: boolean
  payload: Record<string, any>
  created_at: string
}

export interface Block {
  type: string
  text?: string
  thinking?: string
  id?: string
  name?: string
  input?: unknown
  tool_use_id?: string
  content?: unknown
  is_error?: boolean
}

/** The text of a message's content: a string, or its text blocks joined. */
export const textOf = (content: unknown): string =>
  typeof content === 'string'
    ? content
    : Array.isArray(content)
      ? content
          .filter((b: Block) => b?.type === 'text' && typeof b.text === 'string')
          .map((b: Block) => b.text)
          .join('\n')
      : ''
