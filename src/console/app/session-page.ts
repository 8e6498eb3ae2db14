import type { Api } from './api.ts'
import { h, fill } from './dom.ts'
import type { ConsoleEvent } from './events.ts'
import { followSession } from './follow.ts'
import { createTimeline } from './timeline.ts'

interface Turn {
  id: string
  state: string
  enqueued_at: string
  started_at: string | null
}
interface Session {
  id: string
  workspace_id: string
  title: string
  status: string
}

const QUEUE_POLL_MS = 3000

/** One session: its conversation followed live, the queue, and what an operator can do. */
export function sessionPage(
  api: Api,
  sessionId: string,
  signal: AbortSignal,
  onConnection: (state: string) => void,
): HTMLElement {
  const sid = encodeURIComponent(sessionId)
  const heading = h('h2', {}, sessionId)
  const facts = h('p', { class: 'facts' })
  const problem = h('p', { class: 'error', role: 'alert', hidden: true })
  const queueList = h('ol', { class: 'queue', 'aria-label': 'Queue' })
  const cancel = h(
    'button',
    { type: 'button', disabled: true, onclick: () => void cancelRunning() },
    'Cancel',
  )
  const message = h('textarea', { id: 'message', rows: '3', required: true })
  const send = h('button', { type: 'submit' }, 'Send')
  let session: Session | null = null
  let running: string | null = null

  const timeline = createTimeline({
    answer: async (requestId, behavior) => {
      await api.post(`/v1/sessions/${sid}/permissions/${encodeURIComponent(requestId)}`, {
        behavior,
      })
    },
  })
  const show = (err: unknown) => {
    problem.hidden = false
    problem.textContent = (err as Error).message
  }

  async function loadSession() {
    if (signal.aborted) return
    try {
      const { session: s } = await api.get<{ session: Session }>(`/v1/sessions/${sid}`)
      session = s
      heading.textContent = s.title || s.id
      fill(facts, h('code', {}, s.id), ` · workspace ${s.workspace_id} · ${s.status}`)
    } catch (err) {
      show(err)
    }
  }

  let timer: ReturnType<typeof setTimeout> | undefined
  async function refreshQueue() {
    clearTimeout(timer)
    try {
      const { data } = await api.get<{ data: Turn[] }>(`/v1/sessions/${sid}/turns?limit=50`)
      if (signal.aborted) return
      const open = data.filter((t) => t.state === 'queued' || t.state === 'running').reverse()
      running = open.find((t) => t.state === 'running')?.id ?? null
      cancel.disabled = running === null
      fill(
        queueList,
        ...open.map((t) =>
          h('li', { class: `turn ${t.state}` }, `${t.state} `, h('code', {}, t.id)),
        ),
      )
      if (!open.length) fill(queueList, h('li', { class: 'empty' }, 'Nothing queued'))
      // The session's status changes with its turns: read it again with them.
      void loadSession()
    } catch (err) {
      show(err)
    }
    if (!signal.aborted) timer = setTimeout(refreshQueue, QUEUE_POLL_MS)
  }

  async function cancelRunning() {
    if (!running) return
    cancel.disabled = true
    try {
      await api.post(`/api/turns/${encodeURIComponent(running)}/cancel`)
    } catch (err) {
      show(err)
    }
    void refreshQueue()
  }

  async function sendMessage(e: Event) {
    e.preventDefault()
    const text = message.value.trim()
    if (!text || !session) return
    send.disabled = true
    try {
      await api.post('/api/v2/turns', {
        session_id: session.id,
        workspace_id: session.workspace_id,
        user_message: text,
      })
      message.value = ''
      problem.hidden = true
    } catch (err) {
      show(err)
    } finally {
      send.disabled = false
    }
    void refreshQueue()
  }

  message.addEventListener('keydown', (e) => {
    // Ctrl/⌘+Enter sends; Enter alone is a new line.
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) void sendMessage(e)
  })
  const onEvent = (e: ConsoleEvent) => {
    timeline.add(e)
    if (e.event_type === 'turn_started' || e.event_type === 'done') void refreshQueue()
  }
  signal.addEventListener('abort', () => clearTimeout(timer))
  void loadSession()
  void refreshQueue()
  followSession({ api, sessionId, signal, onEvent, onState: onConnection })

  return h(
    'section',
    { class: 'session' },
    h('p', {}, h('a', { href: '#/' }, '← All sessions')),
    heading,
    facts,
    problem,
    h(
      'div',
      { class: 'columns' },
      timeline.root,
      h('aside', { 'aria-label': 'Turns' }, h('h3', {}, 'Queue'), queueList, cancel),
    ),
    h(
      'form',
      { class: 'composer', onsubmit: (e) => void sendMessage(e) },
      h('label', { for: 'message' }, 'Message'),
      message,
      send,
    ),
  )
}
