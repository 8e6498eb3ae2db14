import { BadRequestError, PathEscapeError } from '../errors.ts'

/** One stored file: its path relative to the workspace root (POSIX) and its size in bytes. */
export interface StoreEntry {
  path: string
  size: number
  /** True when it was stored executable (a script a worker made executable stays so). */
  executable?: true
}

/** A file to write: relative POSIX path, its exact bytes, and whether it is executable. */
export interface StoreFile {
  path: string
  bytes: Uint8Array
  executable?: boolean
}

/**
 * Where workspaces persist between turns. A store holds, per workspace id, a tree of regular
 * files addressed by relative POSIX paths (`projects/x/1.jsonl`). Directories exist only as
 * prefixes of file paths; a file's one mode bit is whether it is executable; there is no mtime
 * or symlink.
 *
 * - Paths are checked with `checkStorePath`: relative, no empty, `.` or `..` segments, no NUL.
 *   Any other byte sequence is a valid name (hidden files, `tasks`, `?`, unicode, long names).
 * - Workspace ids are checked with `checkWorkspaceId`: `[A-Za-z0-9._-]+`, never `.` or `..`.
 * - `list` returns every file below `prefix` (a directory path; all files when absent), sorted by
 *   path, recursively. An unknown workspace lists as `[]`.
 * - `read` returns the exact bytes, or throws `NotFoundError` when the file is absent.
 * - `write` / `writeMany` create or replace files (parents appear as needed). `writeMany` may
 *   batch; a failure part-way can leave earlier files written.
 * - `remove` deletes files; paths that do not exist are ignored.
 * - Failures of the backing service throw `UpstreamError` whose message starts with `describe()`.
 */
export interface WorkspaceStore {
  /** Short kind, `local` or `openviking`. */
  readonly name: string
  /** Where the store lives, for error messages: `openviking at http://host:1933`. */
  describe(): string
  list(workspaceId: string, prefix?: string): Promise<StoreEntry[]>
  read(workspaceId: string, path: string): Promise<Uint8Array>
  write(workspaceId: string, path: string, bytes: Uint8Array): Promise<void>
  writeMany(workspaceId: string, files: StoreFile[]): Promise<void>
  remove(workspaceId: string, paths: string[]): Promise<void>
}

const workspaceIdPattern = /^[A-Za-z0-9._-]{1,128}$/

/** Throws `BadRequestError` unless `id` is 1–128 of `[A-Za-z0-9._-]` and not `.` or `..`. */
export function checkWorkspaceId(id: string): string {
  if (typeof id !== 'string' || !workspaceIdPattern.test(id) || id === '.' || id === '..')
    throw new BadRequestError(
      `workspace id ${JSON.stringify(id)} is invalid; use 1-128 characters of A-Z a-z 0-9 . _ - ` +
        '(not "." or "..")',
    )
  return id
}

/**
 * Checks a relative POSIX path and returns its segments. `..` and absolute paths are escapes
 * (`PathEscapeError`); empty input, empty or `.` segments and NUL bytes are malformed
 * (`BadRequestError`), so every file has exactly one spelling.
 */
export function checkStorePath(path: string): string[] {
  if (typeof path !== 'string' || path === '') throw new BadRequestError('path is empty')
  if (path.includes('\0'))
    throw new BadRequestError(`path ${JSON.stringify(path)} contains a NUL byte`)
  if (path.startsWith('/'))
    throw new PathEscapeError(`path "${path}" is absolute; give a path relative to the workspace`)
  const segments = path.split('/')
  if (segments.includes('..'))
    throw new PathEscapeError(`path "${path}" contains ".."; give a path inside the workspace`)
  if (segments.includes(''))
    throw new BadRequestError(`path "${path}" has an empty segment; remove the extra "/"`)
  if (segments.includes('.'))
    throw new BadRequestError(`path "${path}" has a "." segment; write the path without it`)
  return segments
}

/** A `list` prefix: empty or absent for everything, else a checked path (one trailing `/` ok). */
export function checkPrefix(prefix: string | undefined): string {
  if (prefix === undefined || prefix === '') return ''
  const trimmed = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix
  checkStorePath(trimmed)
  return trimmed
}

/** True when `path` is `prefix` itself or lies below it (`prefix` already checked). */
export function isUnderPrefix(path: string, prefix: string): boolean {
  return prefix === '' || path === prefix || path.startsWith(prefix + '/')
}

/** Sorts entries by path in code-unit order, the order every store returns. */
export function sortEntries(entries: StoreEntry[]): StoreEntry[] {
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}

/** Keeps the last file given for each path, in first-seen order (a batch names a path once). */
export function lastWins(files: readonly StoreFile[]): StoreFile[] {
  const byPath = new Map<string, StoreFile>()
  for (const file of files) byPath.set(file.path, file)
  return [...byPath.values()]
}

/** Runs `fn` over `items` with at most `limit` calls in flight; results keep the input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await fn(items[index] as T, index)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}
