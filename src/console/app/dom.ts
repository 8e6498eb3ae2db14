type Child = Node | string | null | undefined | false
type Attrs = Record<string, string | boolean | ((e: Event) => void) | undefined>

/**
 * An element with attributes, listeners (`onclick`) and children. Text goes in as text nodes,
 * never as HTML: nothing the broker or a model says is parsed as markup.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue
    if (typeof value === 'function') el.addEventListener(name.slice(2), value)
    else el.setAttribute(name, value === true ? '' : value)
  }
  el.append(
    ...children.filter((c): c is Node | string => c !== null && c !== undefined && c !== false),
  )
  return el
}

/** Replaces an element's children. */
export const fill = (el: Element, ...children: Child[]) => {
  el.replaceChildren(...children.filter((c): c is Node | string => !!c))
}
