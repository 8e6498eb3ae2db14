// The shapes of the messages the fake writes, as Claude Code writes them.
import { now, uuid, type Json } from './options.ts'

export const assistant = (
  model: string,
  content: Json[],
  id = `msg_fake_${uuid().slice(0, 8)}`,
) => ({
  type: 'assistant',
  message: {
    id,
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: null,
    stop_sequence: null,
    usage: { input_tokens: 10, output_tokens: 5 },
  },
  parent_tool_use_id: null,
})

export const toolResult = (toolUseId: string, content: unknown, isError: boolean) => ({
  type: 'user',
  message: {
    role: 'user',
    content: [{ type: 'tool_result', tool_use_id: toolUseId, content, is_error: isError }],
  },
  parent_tool_use_id: null,
  timestamp: now(),
})

/**
 * Partial-message frames of one text block, a delta per word. As Claude Code sends them: over
 * CCR v2 each delta carries the whole text so far (cumulative); over stdio only what is new.
 */
export const streamEvents = (model: string, id: string, text: string, cumulative: boolean) => [
  {
    type: 'message_start',
    message: { id, type: 'message', role: 'assistant', model, content: [] },
  },
  { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
  ...(text.match(/\S+\s*|\s+/g) ?? ['']).map((word, i, words) => ({
    type: 'content_block_delta',
    index: 0,
    delta: { type: 'text_delta', text: cumulative ? words.slice(0, i + 1).join('') : word },
  })),
  { type: 'content_block_stop', index: 0 },
  { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 5 } },
  { type: 'message_stop' },
]

export const textOf = (content: unknown): string =>
  typeof content === 'string'
    ? content
    : Array.isArray(content)
      ? content
          .filter((b) => b?.type === 'text')
          .map((b) => b.text)
          .join('\n')
      : ''

export const toolUseId = () => `toolu_fake_${uuid().replaceAll('-', '').slice(0, 20)}`
