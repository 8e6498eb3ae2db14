import type {
  AssistantMessage,
  BrokerEvent,
  ContentBlock,
  Done,
  PermissionRequest,
  PermissionResolved,
  StreamEvent,
  TurnError,
  UserMessage,
} from '../client/events.ts'

/** The inputs that say most about a call, shown first (stored inputs lose their key order). */
const LEADING_KEYS = ['command', 'file_path', 'path', 'pattern', 'url', 'query', 'prompt']
const leading = (k: string) => {
  const i = LEADING_KEYS.indexOf(k)
  return i === -1 ? LEADING_KEYS.length : i
}

/** An input shown in one line: `key: value` pairs, strings quoted, the whole cut at `max`. */
export function shortInput(input: unknown, max = 80): string {
  if (typeof input !== 'object' || input === null) return ''
  const entries = Object.entries(input as Record<string, unknown>)
  entries.sort(([a], [b]) => leading(a) - leading(b))
  const parts = entries.map(([k, v]) => {
    const value = typeof v === 'string' ? JSON.stringify(v.replace(/\s+/g, ' ')) : JSON.stringify(v)
    return `${k}: ${value}`
  })
  const text = parts.join(', ')
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}

const firstLine = (text: string, max = 100) => {
  const line = text.split('\n').find((l) => l.trim()) ?? ''
  return line.length > max ? `${line.slice(0, max - 1)}…` : line
}

const toolResultText = (content: unknown): string =>
  typeof content === 'string'
    ? content
    : Array.isArray(content)
      ? content
          .map((b) => (typeof b?.text === 'string' ? b.text : ''))
          .filter(Boolean)
          .join('\n')
      : ''

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/**
 * The last line of a turn: state, duration (as the caller waited for it, else as the worker
 * measured it), cost, tokens, and the first line of an error.
 */
export function summaryLine(done: Done, elapsedMs: number | null): string {
  const mark = done.state === 'done' ? '✓' : done.state === 'cancelled' ? '■' : '✗'
  const ms = elapsedMs ?? done.result?.duration_ms
  const parts = [`${mark} ${done.state}${ms == null ? '' : ` in ${seconds(ms)}`}`]
  const cost = done.result?.cost_usd ?? done.result?.total_cost_usd
  if (typeof cost === 'number') parts.push(`$${cost.toFixed(4)}`)
  const usage = done.result?.usage
  if (usage) parts.push(`${usage.input_tokens ?? 0} in / ${usage.output_tokens ?? 0} out tokens`)
  if (done.error && done.state !== 'done') parts.push(firstLine(done.error, 200))
  return parts.join(' · ')
}

/**
 * Turns events into what a person reads: the assistant's text as it arrives (partial messages
 * replaced in place, then the final text not printed twice), one line per tool call with its
 * outcome, permission requests and their answers, errors, and a summary at the end.
 */
export function createRenderer(write: { out(t: string): void; err(t: string): void }) {
  // Text already shown of the message being streamed: its id, and each block's text by index.
  let streaming: { id: string | null; shown: Map<number, string> } | null = null
  const shownMessages = new Set<string>()
  let atLineStart = true
  const out = (text: string) => {
    if (!text) return
    write.out(text)
    atLineStart = text.endsWith('\n')
  }
  const line = (text: string) => out(`${atLineStart ? '' : '\n'}${text}\n`)

  const streamText = (e: StreamEvent) => {
    const ev = e.event
    if (ev.type === 'message_start') {
      const id = (ev.message as { id?: string } | undefined)?.id ?? null
      streaming = { id, shown: new Map() }
      return
    }
    if (ev.type !== 'content_block_delta' || ev.delta?.type !== 'text_delta') return
    streaming ??= { id: null, shown: new Map() }
    const index = Number(ev.index ?? 0)
    const shown = streaming.shown.get(index)
    // The broker sends each delta as the block's whole text so far; a block starts a paragraph.
    const text = ev.delta.text ?? ''
    if (shown === undefined && streaming.shown.size > 0) out('\n\n')
    out(shown !== undefined && text.startsWith(shown) ? text.slice(shown.length) : text)
    streaming.shown.set(index, text)
    if (streaming.id) shownMessages.add(streaming.id)
  }

  const assistant = (e: AssistantMessage) => {
    const id = e.message.id ?? null
    for (const block of e.message.content as ContentBlock[]) {
      if (block.type === 'text' && block.text) {
        if (id && shownMessages.has(id)) continue
        out(block.text)
      } else if (block.type === 'tool_use') line(`⏺ ${block.name}(${shortInput(block.input)})`)
    }
  }

  const toolResults = (e: UserMessage) => {
    if (!Array.isArray(e.message.content)) return
    for (const block of e.message.content)
      if (block.type === 'tool_result') {
        const text = firstLine(toolResultText(block.content))
        line(`  ⎿ ${block.is_error ? 'error' : 'ok'}${text ? `: ${text}` : ''}`)
      }
  }

  return {
    event(e: BrokerEvent) {
      const p = e.payload
      switch (p.type) {
        case 'stream_event':
          return streamText(p as StreamEvent)
        case 'assistant':
          return assistant(p as AssistantMessage)
        case 'user':
          if (e.source === 'worker') return toolResults(p as UserMessage)
          if (e.source === 'client') {
            const c = (p as UserMessage).message.content
            line(`› ${typeof c === 'string' ? c : firstLine(toolResultText(c))}`)
          }
          return
        case 'permission_request': {
          const r = p as PermissionRequest
          return line(`? ${r.tool_name}(${shortInput(r.input)}) asks for permission`)
        }
        case 'permission_resolved': {
          const r = p as PermissionResolved
          const how = { allow: 'allowed', deny: 'denied', withdrawn: 'withdrawn' }[r.behavior]
          return line(`  ⎿ ${how} (${r.decided_by})`)
        }
        case 'error':
          if (!atLineStart) out('\n')
          return write.err(`✗ ${(p as TurnError).message}\n`)
        case 'turn_recovered':
          return line(`↻ the turn runs again: ${(p as { reason?: string }).reason ?? ''}`)
      }
    },
    /** The summary after a turn's done event; `elapsedMs` when the caller timed the turn. */
    done(done: Done, elapsedMs: number | null) {
      line(summaryLine(done, elapsedMs))
    },
    /** Whether the cursor is at the start of a line (a spinner may draw there). */
    atLineStart: () => atLineStart,
  }
}
