import type { Api } from './api.ts'
import { h, fill } from './dom.ts'

interface Overview {
  id: string
  workspace_id: string
  title: string
  status: string
  last_activity_at: string
  running_turn_id: string | null
  queued_turns: number
  cost_usd: number
}

const POLL_MS = 2000
const when = (iso: string) => new Date(iso).toLocaleString()

/** The list of sessions, filtered by workspace and a search, refreshed every two seconds. */
export function sessionsPage(api: Api, signal: AbortSignal): HTMLElement {
  const workspace = h('input', { id: 'f-workspace', type: 'search', autocomplete: 'off' })
  const search = h('input', { id: 'f-search', type: 'search', autocomplete: 'off' })
  const body = h('tbody')
  const note = h('p', { class: 'note', role: 'status' })
  const page = h(
    'section',
    { class: 'sessions' },
    h('h2', {}, 'Sessions'),
    h(
      'form',
      { class: 'filters', role: 'search', onsubmit: (e) => (e.preventDefault(), void refresh()) },
      h('label', { for: 'f-workspace' }, 'Workspace'),
      workspace,
      h('label', { for: 'f-search' }, 'Search'),
      search,
    ),
    h(
      'table',
      {},
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ...[
            'Session',
            'Workspace',
            'Status',
            'Last activity',
            'Running turn',
            'Queued',
            'Cost',
          ].map((c) => h('th', { scope: 'col' }, c)),
        ),
      ),
      body,
    ),
    note,
  )
  let timer: ReturnType<typeof setTimeout> | undefined
  async function refresh() {
    clearTimeout(timer)
    const q = new URLSearchParams()
    if (workspace.value.trim()) q.set('workspace_id', workspace.value.trim())
    if (search.value.trim()) q.set('q', search.value.trim())
    try {
      const { data } = await api.get<{ data: Overview[] }>(`/v1/overview/sessions?${q}`)
      if (signal.aborted) return
      fill(body, ...data.map(row))
      note.textContent = data.length ? '' : 'No sessions match.'
    } catch (err) {
      note.textContent = `Could not load the sessions: ${(err as Error).message}`
    }
    if (!signal.aborted) timer = setTimeout(refresh, POLL_MS)
  }
  const row = (s: Overview) =>
    h(
      'tr',
      { 'data-session': s.id },
      h(
        'td',
        {},
        h(
          'a',
          { href: `#/sessions/${encodeURIComponent(s.id)}` },
          h('span', { class: 'title' }, s.title || '(untitled)'),
          ' ',
          h('code', {}, s.id),
        ),
      ),
      h('td', {}, s.workspace_id),
      h('td', {}, s.status),
      h('td', {}, h('time', { datetime: s.last_activity_at }, when(s.last_activity_at))),
      h('td', {}, s.running_turn_id ? h('code', {}, s.running_turn_id) : '—'),
      h('td', {}, String(s.queued_turns)),
      h('td', {}, `$${s.cost_usd.toFixed(4)}`),
    )
  workspace.addEventListener('input', () => void refresh())
  search.addEventListener('input', () => void refresh())
  signal.addEventListener('abort', () => clearTimeout(timer))
  void refresh()
  return page
}
