/*
 * How store paths become OpenViking names. Each path segment is stored as:
 *
 * 1. Escaped: `?` `#` `\` `:` `%` `~` and control characters become `~XX` (uppercase hex of the
 *    byte), because OpenViking rejects `?`, `#`, `\`, drive-like `X:` and `{a:b}` path variables,
 *    and might decode `%`. `~` is the escape character, so it is always escaped itself.
 * 2. Every `.ccbroker-` becomes `~2Eccbroker-`, so names this store generates (the workspace
 *    manifest and `<name>.ccbroker-parts/` directories) never collide with user names.
 * 3. A segment equal to a name OpenViking generates, refuses or hides as internal
 *    (`.abstract.md`, `.overview.md`, `.relations.json`, `.summary_cache.json`, `_system`,
 *    `.path.ovlock`, `.redirect.json`, `.sync_log.json`) gets its first character escaped.
 *    `tasks` stays: it is written and read by exact URI, and listed from the manifest.
 * 4. A segment still longer than 200 UTF-8 bytes (OpenViking silently shortens past 255) is cut,
 *    between characters and escapes, into pieces of at most 198 bytes stored as nested
 *    directories: `~L<piece>/…/~F<last piece>`. The 200-byte budget leaves room for the
 *    `.ccbroker-parts` suffix.
 *
 * Decoding reverses these steps, and a stored name counts only when re-encoding its decoded
 * form gives it back exactly, so the mapping is one-to-one.
 */

export const manifestName = '.ccbroker-manifest.json'
export const partsSuffix = '.ccbroker-parts'
/** Semantic sidecars OpenViking writes into directories; never user files. */
export const sidecarNames = new Set([
  '.abstract.md',
  '.overview.md',
  '.relations.json',
  '.summary_cache.json',
])
const reservedNames = new Set([
  ...sidecarNames,
  '_system',
  '.path.ovlock',
  '.redirect.json',
  '.sync_log.json',
])
const maxSegmentBytes = 200
const maxPieceBytes = 198
const utf8 = new TextEncoder()

const escapeChar = (ch: string) =>
  `~${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`

function storedSegments(name: string): string[] {
  let out = name
    .replace(/[\x00-\x1f\x7f?#\\:%~]/g, escapeChar)
    .replaceAll('.ccbroker-', '~2Eccbroker-')
  if (reservedNames.has(out)) out = escapeChar(out[0]!) + out.slice(1)
  if (utf8.encode(out).length <= maxSegmentBytes) return [out]
  const pieces: string[] = []
  let piece = ''
  let size = 0
  for (const token of out.match(/~[0-9A-F]{2}|[\s\S]/gu) ?? []) {
    const tokenSize = utf8.encode(token).length
    if (size + tokenSize > maxPieceBytes) {
      pieces.push(piece)
      piece = ''
      size = 0
    }
    piece += token
    size += tokenSize
  }
  pieces.push(piece)
  return pieces.map((p, i) => (i === pieces.length - 1 ? `~F${p}` : `~L${p}`))
}

/** The stored relative path of a checked store path (segments joined by `/`). */
export function toStoredPath(path: string): string {
  return path.split('/').flatMap(storedSegments).join('/')
}

/** The store path of stored segments, or null when they are not a name this scheme produces. */
export function fromStoredSegments(stored: string[]): string | null {
  const names: string[] = []
  let pending: string | null = null
  for (const segment of stored) {
    if (segment.startsWith('~L')) {
      pending = (pending ?? '') + segment.slice(2)
      continue
    }
    const escaped = segment.startsWith('~F') ? (pending ?? '') + segment.slice(2) : segment
    pending = null
    if (/~(?![0-9A-F]{2})/.test(escaped)) return null
    names.push(
      escaped.replace(/~([0-9A-F]{2})/g, (_, hex: string) =>
        String.fromCharCode(parseInt(hex, 16)),
      ),
    )
  }
  if (pending !== null || names.some((n) => n === '' || n === '.' || n === '..')) return null
  const path = names.join('/')
  return toStoredPath(path) === stored.join('/') ? path : null
}
