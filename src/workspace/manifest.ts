import { lstat, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { mapLimit } from './store.ts'

export interface ManifestEntry {
  size: number
  /** Lowercase hex SHA-256 of the content. */
  sha256: string
  /** Permission bits (`mode & 0o7777`). */
  mode: number
}

/** Relative POSIX path → entry, for regular files only. */
export type Manifest = Map<string, ManifestEntry>

export interface SkippedEntry {
  path: string
  kind: 'symlink' | 'other'
}

export interface TreeScan {
  files: Manifest
  /** Entries that are not regular files or directories (symlinks, sockets, fifos), sorted. */
  skipped: SkippedEntry[]
}

export interface ManifestDiff {
  added: string[]
  changed: string[]
  deleted: string[]
}

const hashConcurrency = 8

const byPath = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

async function hashFile(path: string): Promise<string> {
  const hasher = new Bun.CryptoHasher('sha256')
  for await (const chunk of Bun.file(path).stream()) hasher.update(chunk)
  return hasher.digest('hex')
}

/**
 * Walks `dir` and records every regular file, hidden ones included. Symlinks are neither
 * followed nor recorded (a store cannot hold them) but reported in `skipped`.
 */
export async function scanTree(dir: string): Promise<TreeScan> {
  const found: { path: string; full: string }[] = []
  const skipped: SkippedEntry[] = []
  const walk = async (abs: string, rel: string): Promise<void> => {
    for (const entry of await readdir(abs, { withFileTypes: true })) {
      const path = rel === '' ? entry.name : `${rel}/${entry.name}`
      const full = join(abs, entry.name)
      if (entry.isDirectory()) await walk(full, path)
      else if (entry.isFile()) found.push({ path, full })
      else skipped.push({ path, kind: entry.isSymbolicLink() ? 'symlink' : 'other' })
    }
  }
  await walk(dir, '')
  found.sort((a, b) => byPath(a.path, b.path))
  const entries = await mapLimit(found, hashConcurrency, async ({ full }) => {
    const info = await lstat(full)
    return { size: info.size, sha256: await hashFile(full), mode: info.mode & 0o7777 }
  })
  const files: Manifest = new Map()
  found.forEach(({ path }, i) => files.set(path, entries[i] as ManifestEntry))
  return { files, skipped: skipped.sort((a, b) => byPath(a.path, b.path)) }
}

/** What changed from `before` to `after`; a file changed when its size, hash or mode differs. */
export function diffManifests(before: Manifest, after: Manifest): ManifestDiff {
  const added: string[] = []
  const changed: string[] = []
  const deleted: string[] = []
  for (const [path, entry] of after) {
    const old = before.get(path)
    if (!old) added.push(path)
    else if (old.size !== entry.size || old.sha256 !== entry.sha256 || old.mode !== entry.mode)
      changed.push(path)
  }
  for (const path of before.keys()) if (!after.has(path)) deleted.push(path)
  return { added: added.sort(byPath), changed: changed.sort(byPath), deleted: deleted.sort(byPath) }
}
