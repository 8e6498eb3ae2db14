import { lstat, realpath } from 'node:fs/promises'
import { isAbsolute, join, relative, resolve, sep } from 'node:path'
import { PathEscapeError } from '../errors.ts'

/**
 * Resolves `path` (relative, POSIX separators) inside `root`. Rejects absolute paths, `..`
 * segments, NUL bytes, and any existing prefix that is a symlink pointing outside `root`.
 * This is the one containment check: workspace tools and stores both call it.
 */
export async function resolveInside(root: string, path: string): Promise<string> {
  if (typeof path !== 'string' || path.length === 0) throw new PathEscapeError('path is empty')
  if (path.includes('\0')) throw new PathEscapeError('path contains a NUL byte')
  if (isAbsolute(path) || path.startsWith('~'))
    throw new PathEscapeError(`path "${path}" is absolute; give a path relative to the workspace`)
  const segments = path.split(/[\\/]+/).filter((s) => s !== '' && s !== '.')
  if (segments.includes('..'))
    throw new PathEscapeError(`path "${path}" contains ".."; give a path inside the workspace`)
  const realRoot = await realpath(root)
  const target = segments.length === 0 ? realRoot : join(realRoot, ...segments)
  // Walk every existing prefix: a symlink anywhere on the way must stay inside the root.
  let current = realRoot
  for (const segment of segments) {
    current = join(current, segment)
    const info = await lstat(current).catch(() => null)
    if (!info) break
    if (info.isSymbolicLink()) {
      const resolved = await realpath(current).catch(() => null)
      if (!resolved || !isWithin(realRoot, resolved))
        throw new PathEscapeError(`path "${path}" goes through a symlink that leaves the workspace`)
    }
  }
  return target
}

export function isWithin(root: string, candidate: string): boolean {
  const rel = relative(resolve(root), resolve(candidate))
  return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel))
}
