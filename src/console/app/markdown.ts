import { h } from './dom.ts'

// Model output is untrusted: it becomes DOM nodes built here, text as text nodes, never parsed
// as HTML. Links keep only http(s) and mailto targets; images are shown as links (the page's
// policy would refuse to load them anyway).
const SAFE_URL = /^(https?:|mailto:)/i

/** Inline Markdown: `code`, **bold**, *em* / _em_, [links](url), ![images](url). */
function inline(text: string): (Node | string)[] {
  const out: (Node | string)[] = []
  // Underscores count only at word edges: snake_case_names stay as they are.
  const pattern =
    /`([^`]+)`|\*\*([^*]+)\*\*|(?<!\w)__([^_]+)__(?!\w)|\*([^*\s][^*]*)\*|(?<!\w)_([^_\s][^_]*)_(?!\w)|!?\[([^\]]*)\]\(([^)\s]+)\)/g
  let at = 0
  for (const m of text.matchAll(pattern)) {
    if (m.index > at) out.push(text.slice(at, m.index))
    at = m.index + m[0].length
    if (m[1] !== undefined) out.push(h('code', {}, m[1]))
    else if (m[2] !== undefined || m[3] !== undefined)
      out.push(h('strong', {}, ...inline(m[2] ?? m[3]!)))
    else if (m[4] !== undefined || m[5] !== undefined)
      out.push(h('em', {}, ...inline(m[4] ?? m[5]!)))
    else {
      const label = m[6] || m[7]!
      const url = m[7]!
      out.push(
        SAFE_URL.test(url)
          ? h('a', { href: url, rel: 'noopener noreferrer nofollow', target: '_blank' }, label)
          : label,
      )
    }
  }
  if (at < text.length) out.push(text.slice(at))
  return out
}

/**
 * Block Markdown: headings, fenced code, lists, quotes, rules and paragraphs. Unfinished input
 * (a message still being written) renders as far as it goes: an open fence is code to the end.
 */
export function renderMarkdown(source: string): HTMLElement {
  const root = h('div', { class: 'md' })
  const lines = source.replace(/\r\n?/g, '\n').split('\n')
  let i = 0
  const para: string[] = []
  const flush = () => {
    if (para.length) root.append(h('p', {}, ...inline(para.join('\n'))))
    para.length = 0
  }
  while (i < lines.length) {
    const line = lines[i]!
    const fence = /^\s*(```|~~~)\s*([\w+-]*)/.exec(line)
    if (fence) {
      flush()
      const body: string[] = []
      for (i++; i < lines.length && !lines[i]!.trimStart().startsWith(fence[1]!); i++)
        body.push(lines[i]!)
      i++
      root.append(
        h('pre', {}, h('code', fence[2] ? { 'data-lang': fence[2] } : {}, body.join('\n'))),
      )
      continue
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line)
    if (heading) {
      flush()
      // Shown one level below the page's own headings.
      const level = Math.min(6, heading[1]!.length + 2)
      root.append(h(`h${level}` as 'h3', {}, ...inline(heading[2]!)))
      i++
      continue
    }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      flush()
      root.append(h('hr'))
      i++
      continue
    }
    const item = /^\s*([-*+]|\d+[.)])\s+/.exec(line)
    if (item) {
      flush()
      const ordered = /\d/.test(item[1]!)
      const list = h(ordered ? 'ol' : 'ul')
      while (i < lines.length) {
        const m = /^\s*([-*+]|\d+[.)])\s+(.*)$/.exec(lines[i]!)
        if (!m || /\d/.test(m[1]!) !== ordered) break
        list.append(h('li', {}, ...inline(m[2]!)))
        i++
      }
      root.append(list)
      continue
    }
    if (/^\s*>/.test(line)) {
      flush()
      const quoted: string[] = []
      for (; i < lines.length && /^\s*>/.test(lines[i]!); i++)
        quoted.push(lines[i]!.replace(/^\s*>\s?/, ''))
      const inner = renderMarkdown(quoted.join('\n'))
      root.append(h('blockquote', {}, ...inner.childNodes))
      continue
    }
    if (line.trim() === '') flush()
    else para.push(line)
    i++
  }
  flush()
  return root
}
