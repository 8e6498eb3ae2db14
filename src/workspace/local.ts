import { randomUUID } from 'node:crypto'
import { chmod, lstat, mkdir, readdir, realpath, rename, rm, rmdir, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts'
import { resolveInside } from './paths.ts'
import type { StoreEntry, StoreFile, WorkspaceStore } from './store.ts'
import {
  checkPrefix,
  checkStorePath,
  checkWorkspaceId,
  isUnderPrefix,
  lastWins,
  mapLimit,
  sortEntries,
} from './store.ts'

export interface LocalStoreOptions {
  /** Directory holding one subdirectory per workspace. */
  root: string
}

// Temp files live beside the workspaces (same filesystem, so rename is atomic) but outside any
// of them, so a listing never shows a half-written file. Ids starting with it are refused.
const tempDirName = '.ccbroker-tmp'
const writeConcurrency = 16

/** A listed file; `executable` only when it is (stores say nothing of plain files). */
const entryOf = (path: string, info: { size: number; mode: number }): StoreEntry =>
  info.mode & 0o100 ? { path, size: info.size, executable: true } : { path, size: info.size }

const errno = (err: unknown) => (err as NodeJS.ErrnoException | null)?.code

export function createLocalStore({ root }: LocalStoreOptions): WorkspaceStore {
  const describe = () => `local directory ${root}`

  const workspaceDir = (workspaceId: string) => {
    checkWorkspaceId(workspaceId)
    if (workspaceId.startsWith(tempDirName))
      throw new BadRequestError(`workspace id "${workspaceId}" is reserved by the local store`)
    return join(root, workspaceId)
  }

  // resolveInside treats `\` as a separator (it guards worker paths against Windows `..\`) and a
  // leading `~` as a home directory, so such names would be misplaced or refused as escapes:
  // say plainly that this store cannot keep them.
  const checkPath = (workspaceId: string, path: string) => {
    checkStorePath(path)
    const problem = path.includes('\\')
      ? 'contains a backslash'
      : path.startsWith('~')
        ? 'starts with "~"'
        : null
    if (problem)
      throw new BadRequestError(
        `path "${path}" ${problem}, which the local store cannot keep in workspace ` +
          `${workspaceId}; rename the file`,
      )
  }

  const exists = (path: string) =>
    lstat(path).then(
      () => true,
      (err) => (errno(err) === 'ENOENT' ? false : Promise.reject(err)),
    )

  async function walk(dir: string, rel: string, out: StoreEntry[]): Promise<void> {
    const entries = await readdir(dir, { withFileTypes: true }).catch((err) => {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return []
      throw err
    })
    for (const entry of entries) {
      const path = rel === '' ? entry.name : `${rel}/${entry.name}`
      const full = join(dir, entry.name)
      // Symlinks are not part of the store model: never followed, never listed.
      if (entry.isDirectory()) await walk(full, path, out)
      else if (entry.isFile()) {
        const info = await lstat(full).catch(() => null)
        if (info?.isFile()) out.push(entryOf(path, info))
      }
    }
  }

  async function list(workspaceId: string, prefix?: string): Promise<StoreEntry[]> {
    const base = workspaceDir(workspaceId)
    const under = checkPrefix(prefix)
    if (under !== '') checkPath(workspaceId, under)
    if (!(await exists(base))) return []
    const start = under === '' ? base : await resolveInside(base, under)
    const info = await lstat(start).catch(() => null)
    if (!info) return []
    if (info.isFile()) return [entryOf(under, info)]
    if (!info.isDirectory()) return []
    const out: StoreEntry[] = []
    await walk(start, under, out)
    return sortEntries(out.filter((e) => isUnderPrefix(e.path, under)))
  }

  async function read(workspaceId: string, path: string): Promise<Uint8Array> {
    const base = workspaceDir(workspaceId)
    checkPath(workspaceId, path)
    const missing = () => new NotFoundError(`file "${path}" not found in workspace ${workspaceId}`)
    if (!(await exists(base))) throw missing()
    const target = await resolveInside(base, path)
    const info = await lstat(target).catch(() => null)
    if (!info?.isFile()) throw missing()
    return Bun.file(target)
      .bytes()
      .catch((err) => Promise.reject(errno(err) === 'ENOENT' ? missing() : err))
  }

  async function writeOne(base: string, workspaceId: string, file: StoreFile): Promise<void> {
    const target = await resolveInside(base, file.path)
    const temp = join(root, tempDirName, randomUUID())
    try {
      await mkdir(dirname(target), { recursive: true })
      await Bun.write(temp, file.bytes)
      await chmod(temp, file.executable ? 0o700 : 0o600)
      await rename(temp, target)
    } catch (err) {
      await rm(temp, { force: true })
      const code = errno(err)
      if (code === 'ENOTDIR' || code === 'EEXIST' || code === 'EISDIR')
        throw new ConflictError(
          `cannot write "${file.path}" in workspace ${workspaceId}: the path or one of its ` +
            'parents already exists with the other type (file vs directory)',
          { cause: err },
        )
      throw err
    }
  }

  async function writeMany(workspaceId: string, files: StoreFile[]): Promise<void> {
    const base = workspaceDir(workspaceId)
    for (const file of files) checkPath(workspaceId, file.path)
    if (files.length === 0) return
    await mkdir(base, { recursive: true })
    await mkdir(join(root, tempDirName), { recursive: true })
    await mapLimit(lastWins(files), writeConcurrency, (file) => writeOne(base, workspaceId, file))
  }

  async function pruneEmptyParents(base: string, target: string): Promise<void> {
    for (let dir = dirname(target); dir.startsWith(base + '/'); dir = dirname(dir)) {
      const removed = await rmdir(dir).then(
        () => true,
        () => false,
      )
      if (!removed) return
    }
  }

  async function remove(workspaceId: string, paths: string[]): Promise<void> {
    const base = workspaceDir(workspaceId)
    for (const path of paths) checkPath(workspaceId, path)
    if (!(await exists(base))) return
    const realBase = await realpath(base)
    for (const path of paths) {
      const target = await resolveInside(realBase, path)
      const info = await lstat(target).catch(() => null)
      if (!info) continue
      if (info.isDirectory())
        throw new BadRequestError(
          `"${path}" in workspace ${workspaceId} is a directory; remove the files inside it`,
        )
      await unlink(target).catch((err) => {
        if (errno(err) !== 'ENOENT') throw err
      })
      await pruneEmptyParents(realBase, target)
    }
  }

  return {
    name: 'local',
    describe,
    list,
    read,
    write: (workspaceId, path, bytes) => writeMany(workspaceId, [{ path, bytes }]),
    writeMany,
    remove,
  }
}
