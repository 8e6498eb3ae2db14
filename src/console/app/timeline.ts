import { h, fill } from './dom.ts'
import { textOf, type Block, type ConsoleEvent } from './events.ts'
import { renderMarkdown } from './markdown.ts'

/** The message being written: its id (when its start was seen) and each block's text so far. */
interface Partial {
  messageId: string | null
  blocks: string[]
  el: HTMLElement | null
}

const json = (v: unknown) => JSON.stringify(v, null, 2) ?? String(v)
const money = (usd: number) => `$${usd.toFixed(usd < 1 ? 4 : 2)}`
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/**
 * A session's conversation as the events arrive: messages, text growing as it is written (and
 * replaced by the finished message), tool calls folded with their results, permission requests
 * to answer, errors, and each turn's end.
 */
export function createTimeline(opts: {
  answer(requestId: string, behavior: 'allow' | 'deny'): Promise<void>
}) {
  const root = h('div', { class: 'timeline', role: 'log', 'aria-label': 'Conversation' })
  const partials = new Map<string, Partial>()
  const toolResults = new Map<string, HTMLElement>()
  const permissionCards = new Map<string, HTMLElement>()
  const add = (el: HTMLElement, e: ConsoleEvent) => {
    el.dataset.seq = String(e.sequence_num)
    root.append(el)
    return el
  }
  const turnKey = (e: ConsoleEvent) => e.turn_id ?? 'none'

  function streamEvent(e: ConsoleEvent) {
    const ev = e.payload.event ?? {}
    const key = turnKey(e)
    if (ev.type === 'message_start') {
      partials.set(key, { messageId: ev.message?.id ?? null, blocks: [], el: null })
      return
    }
    if (ev.type !== 'content_block_delta' || ev.delta?.type !== 'text_delta') return
    // Joined mid-message (a reload): the deltas carry the text so far, so start from here.
    let partial = partials.get(key)
    if (!partial) partials.set(key, (partial = { messageId: null, blocks: [], el: null }))
    // Each delta holds the block's whole text so far: replace, never append.
    partial.blocks[Number(ev.index ?? 0)] = String(ev.delta.text ?? '')
    partial.el ??= add(
      h('article', { class: 'msg assistant partial', 'aria-busy': 'true' }, h('h3', {}, 'Claude')),
      e,
    )
    fill(partial.el, h('h3', {}, 'Claude'), renderMarkdown(partial.blocks.join('')))
  }

  function assistant(e: ConsoleEvent) {
    const message = e.payload.message ?? {}
    const blocks: Block[] = Array.isArray(message.content) ? message.content : []
    const els = blocks.map((b) => assistantBlock(b)).filter((el): el is HTMLElement => !!el)
    const partial = partials.get(turnKey(e))
    if (partial && (partial.messageId === null || partial.messageId === message.id)) {
      partials.delete(turnKey(e))
      // The finished message takes the partial one's place.
      if (partial.el) {
        partial.el.replaceWith(...els)
        els.forEach((el) => (el.dataset.seq = String(e.sequence_num)))
        return
      }
    }
    for (const el of els) add(el, e)
  }

  function assistantBlock(b: Block): HTMLElement | null {
    if (b.type === 'text' && b.text)
      return h('article', { class: 'msg assistant' }, h('h3', {}, 'Claude'), renderMarkdown(b.text))
    if (b.type === 'thinking' && b.thinking)
      return h(
        'details',
        { class: 'thinking' },
        h('summary', {}, 'Thinking'),
        h('p', {}, b.thinking),
      )
    if (b.type === 'tool_use') {
      const result = h('div', { class: 'tool-result pending' }, 'Waiting for the result…')
      if (b.id) toolResults.set(b.id, result)
      return h(
        'details',
        { class: 'tool' },
        h('summary', {}, 'Tool call: ', h('strong', {}, b.name ?? '?')),
        h('h4', {}, 'Input'),
        h('pre', {}, json(b.input ?? {})),
        result,
      )
    }
    return null
  }

  function toolResult(b: Block, e: ConsoleEvent) {
    const text =
      typeof b.content === 'string' ? b.content : textOf(b.content) || json(b.content ?? '')
    const body = [h('h4', {}, b.is_error ? 'Error' : 'Result'), h('pre', {}, text)]
    const slot = b.tool_use_id ? toolResults.get(b.tool_use_id) : undefined
    if (slot) {
      slot.className = b.is_error ? 'tool-result error' : 'tool-result'
      fill(slot, ...body)
      if (b.is_error) slot.closest('details')?.classList.add('failed')
      return
    }
    add(
      h(
        'details',
        { class: b.is_error ? 'tool failed' : 'tool' },
        h('summary', {}, 'Tool result'),
        ...body,
      ),
      e,
    )
  }

  function user(e: ConsoleEvent) {
    const content = e.payload.message?.content
    if (e.source === 'client') {
      add(h('article', { class: 'msg user' }, h('h3', {}, 'User'), h('p', {}, textOf(content))), e)
      return
    }
    // From the worker: tool results, or a note such as an interruption.
    if (Array.isArray(content))
      for (const b of content as Block[]) {
        if (b.type === 'tool_result') toolResult(b, e)
        else if (b.type === 'text' && b.text) add(h('p', { class: 'note' }, b.text), e)
      }
  }

  function permissionRequest(e: ConsoleEvent) {
    const p = e.payload
    const buttons = h(
      'div',
      { class: 'actions' },
      h('button', { type: 'button', class: 'allow', onclick: () => decide('allow') }, 'Allow'),
      h('button', { type: 'button', class: 'deny', onclick: () => decide('deny') }, 'Deny'),
    )
    const status = h('p', { class: 'permission-status' }, 'Waiting for an answer')
    const card = add(
      h(
        'section',
        { class: 'permission pending', 'aria-label': `Permission request: ${p.tool_name}` },
        h('h3', {}, 'Permission request: ', h('strong', {}, String(p.tool_name))),
        h('pre', {}, json(p.input ?? {})),
        status,
        buttons,
      ),
      e,
    )
    permissionCards.set(String(p.request_id), card)
    async function decide(behavior: 'allow' | 'deny') {
      buttons.querySelectorAll('button').forEach((b) => (b.disabled = true))
      try {
        await opts.answer(String(p.request_id), behavior)
      } catch (err) {
        status.textContent = `Could not answer: ${(err as Error).message}`
        buttons.querySelectorAll('button').forEach((b) => (b.disabled = false))
      }
    }
  }

  function permissionResolved(e: ConsoleEvent) {
    const p = e.payload
    const card = permissionCards.get(String(p.request_id))
    const words: Record<string, string> = {
      allow: 'Allowed',
      deny: 'Denied',
      withdrawn: 'Withdrawn',
    }
    const text = `${words[p.behavior] ?? String(p.behavior)} (by ${p.decided_by})`
    if (!card) return void add(h('p', { class: 'note' }, `Permission ${p.tool_name}: ${text}`), e)
    card.classList.replace('pending', p.behavior === 'allow' ? 'allowed' : 'denied')
    card.querySelector('.actions')?.remove()
    fill(card.querySelector('.permission-status')!, text)
  }

  function done(e: ConsoleEvent) {
    const p = e.payload
    const partial = partials.get(turnKey(e))
    partial?.el?.removeAttribute('aria-busy')
    partials.delete(turnKey(e))
    const r = p.result ?? {}
    const usage = r.usage ?? {}
    const parts = [
      `Turn ${p.state}`,
      typeof r.total_cost_usd === 'number' ? money(r.total_cost_usd) : null,
      typeof usage.input_tokens === 'number'
        ? `${usage.input_tokens} in / ${usage.output_tokens ?? 0} out tokens`
        : null,
      typeof r.duration_ms === 'number' ? seconds(r.duration_ms) : null,
    ].filter(Boolean)
    add(
      h(
        'div',
        { class: `turn-end state-${p.state}` },
        h('span', {}, parts.join(' · ')),
        p.error ? h('p', { class: 'error' }, String(p.error)) : null,
      ),
      e,
    )
  }

  return {
    root,
    add(e: ConsoleEvent) {
      // How far the page has read the log (what a test, or a person in devtools, can check).
      root.dataset.cursor = String(e.sequence_num)
      const p = e.payload
      switch (e.event_type) {
        case 'user':
          return user(e)
        case 'assistant':
          return assistant(e)
        case 'stream_event':
          return streamEvent(e)
        case 'permission_request':
          return permissionRequest(e)
        case 'permission_resolved':
          return permissionResolved(e)
        case 'turn_started':
          return void add(h('p', { class: 'turn-start' }, `Turn ${p.turn_id} started`), e)
        case 'turn_recovered':
        case 'turn_requeued':
          return void add(
            h('p', { class: 'note' }, `Turn ${p.turn_id} ${e.event_type.slice(5)}: ${p.reason}`),
            e,
          )
        case 'error':
          return void add(h('div', { class: 'error', role: 'alert' }, String(p.message)), e)
        case 'result':
          if (p.is_error)
            add(
              h(
                'div',
                { class: 'error' },
                `The worker's turn ended with an error (${p.subtype}): `,
                (Array.isArray(p.errors) ? p.errors : [p.result]).filter(Boolean).join('; '),
              ),
              e,
            )
          return
        case 'done':
          return done(e)
      }
    },
  }
}
