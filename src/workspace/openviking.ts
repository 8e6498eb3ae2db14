import { BadRequestError, NotFoundError, PayloadTooLargeError, UpstreamError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { OpenVikingHttpOptions } from './openviking-http.ts'
import { createOpenVikingHttp, isRecord } from './openviking-http.ts'
import {
  fromStoredSegments,
  manifestName,
  partsSuffix,
  sidecarNames,
  toStoredPath,
} from './openviking-names.ts'
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

export interface OpenVikingLimits {
  /** Operations per batch-write request (server: 256). */
  maxOps: number
  /** Decoded bytes per batch-write request (server: 16 MiB). */
  maxRequestBytes: number
  /** Decoded bytes per file in batch-write (server: 8 MiB); larger files are stored in parts. */
  maxFileBytes: number
  /** Size of each part of a file larger than `maxFileBytes`. */
  partBytes: number
}

export interface OpenVikingStoreOptions extends OpenVikingHttpOptions {
  /** Parent of every workspace directory (an existing resource or user directory URI). */
  rootUri?: string
  /** Workspace directory name under `rootUri`; `{id}` is replaced by the workspace id. */
  workspaceTemplate?: string
  limits?: Partial<OpenVikingLimits>
  log?: Logger
}

/** One line of the store's own manifest: OpenViking listings hide `tasks` and internal names. */
interface ManifestRecord {
  size: number
  sha256: string
  /** Present (true) for an executable file: OpenViking keeps no modes. */
  executable?: true
  /** Present when the file is stored in parts under `<name>.ccbroker-parts/`. */
  parts?: number
}

/** `<name>.ccbroker-parts/parts.json`, written in a request after its parts `part-0`, …. */
interface PartsIndex {
  version: 1
  size: number
  sha256: string
  parts: { size: number; sha256: string }[]
}

interface Put {
  uri: string
  bytes: Uint8Array
}

const MiB = 1024 * 1024
const defaultLimits: OpenVikingLimits = {
  maxOps: 256,
  maxRequestBytes: 16 * MiB,
  maxFileBytes: 8 * MiB,
  partBytes: 4 * MiB,
}
const treeNodeLimit = 100_000
const deleteConcurrency = 8
const readConcurrency = 3

const isStorePath = (path: string) => {
  try {
    return checkStorePath(path).length > 0
  } catch {
    return false
  }
}
const sha256 = (bytes: Uint8Array) => new Bun.CryptoHasher('sha256').update(bytes).digest('hex')
const utf8 = new TextEncoder()
const byKey = ([a]: [string, unknown], [b]: [string, unknown]) => (a < b ? -1 : a > b ? 1 : 0)
const quoted = (paths: string[]) =>
  paths.length === 1
    ? JSON.stringify(paths[0])
    : `${JSON.stringify(paths[0])} and ${paths.length - 1} more`

export function createOpenVikingStore(options: OpenVikingStoreOptions): WorkspaceStore {
  const http = createOpenVikingHttp(options)
  const rootUri = (options.rootUri ?? 'viking://resources/').replace(/\/*$/, '/')
  const template = options.workspaceTemplate ?? 'workspace_{id}'
  const limits = { ...defaultLimits, ...options.limits }
  if (limits.partBytes > limits.maxFileBytes || limits.maxFileBytes > limits.maxRequestBytes)
    throw new BadRequestError('openviking limits need partBytes <= maxFileBytes <= maxRequestBytes')
  // Serialises the read-modify-write of each workspace's manifest within this store.
  const queues = new Map<string, Promise<unknown>>()

  const workspaceRoot = (id: string) =>
    `${rootUri}${template.replaceAll('{id}', checkWorkspaceId(id))}/`
  const inWorkspace = (id: string) => `in workspace ${id}`

  function withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const run = (queues.get(id) ?? Promise.resolve()).then(fn)
    const tail = run.catch(() => {})
    queues.set(id, tail)
    void tail.then(() => queues.get(id) === tail && queues.delete(id))
    return run
  }

  async function loadManifest(id: string): Promise<Map<string, ManifestRecord>> {
    const what = `${manifestName} ${inWorkspace(id)}`
    const bytes = await http.download(workspaceRoot(id) + manifestName, what)
    const files = new Map<string, ManifestRecord>()
    if (!bytes) return files
    let parsed: unknown
    try {
      parsed = JSON.parse(new TextDecoder().decode(bytes))
    } catch {}
    if (!isRecord(parsed) || parsed.version !== 1 || !isRecord(parsed.files))
      throw new UpstreamError(`${http.describe()}: ${what} is not a version 1 manifest`)
    for (const [path, v] of Object.entries(parsed.files)) {
      if (!isRecord(v) || typeof v.size !== 'number' || typeof v.sha256 !== 'string') continue
      if (!isStorePath(path)) continue
      const parts = typeof v.parts === 'number' ? { parts: v.parts } : {}
      const executable = v.executable === true ? { executable: true as const } : {}
      files.set(path, { size: v.size, sha256: v.sha256, ...parts, ...executable })
    }
    return files
  }

  async function saveManifest(id: string, files: Map<string, ManifestRecord>): Promise<void> {
    const json = JSON.stringify({ version: 1, files: Object.fromEntries([...files].sort(byKey)) })
    const bytes = utf8.encode(json)
    if (bytes.length > limits.maxFileBytes)
      throw new PayloadTooLargeError(
        `the manifest of workspace ${id} (${files.size} files, ${bytes.length} bytes) exceeds ` +
          `the ${limits.maxFileBytes}-byte file limit of ${http.describe()}; keep fewer files`,
      )
    const root = workspaceRoot(id)
    const what = `${manifestName} ${inWorkspace(id)}`
    await http.batchWrite(root, [{ uri: root + manifestName, bytes }], what)
  }

  /** Splits puts into requests of at most `maxOps` operations and `maxRequestBytes` bytes. */
  function chunk(puts: Put[]): Put[][] {
    const chunks: Put[][] = []
    let current: Put[] = []
    let size = 0
    for (const put of puts) {
      const full =
        current.length >= limits.maxOps || size + put.bytes.length > limits.maxRequestBytes
      if (current.length > 0 && full) {
        chunks.push(current)
        current = []
        size = 0
      }
      current.push(put)
      size += put.bytes.length
    }
    if (current.length > 0) chunks.push(current)
    return chunks
  }

  async function writeMany(id: string, given: StoreFile[]): Promise<void> {
    const root = workspaceRoot(id)
    const files = lastWins(given)
    for (const file of files) checkStorePath(file.path)
    if (files.length === 0) return
    const what = `${quoted(files.map((f) => f.path))} ${inWorkspace(id)}`
    return withLock(id, async () => {
      await http.mkdir(root, what)
      const manifest = await loadManifest(id)
      const puts: Put[] = []
      const indexes: Put[] = []
      const deletes: { uri: string; recursive?: boolean }[] = []
      for (const { path, bytes, executable } of files) {
        const uri = root + toStoredPath(path)
        const old = manifest.get(path)
        const x = executable ? { executable: true as const } : {}
        if (bytes.length <= limits.maxFileBytes) {
          puts.push({ uri, bytes })
          if (old?.parts) deletes.push({ uri: uri + partsSuffix, recursive: true })
          manifest.set(path, { size: bytes.length, sha256: sha256(bytes), ...x })
          continue
        }
        const index: PartsIndex = {
          version: 1,
          size: bytes.length,
          sha256: sha256(bytes),
          parts: [],
        }
        for (let at = 0; at < bytes.length; at += limits.partBytes) {
          const part = bytes.subarray(at, at + limits.partBytes)
          puts.push({ uri: `${uri}${partsSuffix}/part-${index.parts.length}`, bytes: part })
          index.parts.push({ size: part.length, sha256: sha256(part) })
        }
        const indexBytes = utf8.encode(JSON.stringify(index))
        indexes.push({ uri: `${uri}${partsSuffix}/parts.json`, bytes: indexBytes })
        deletes.push({ uri })
        for (let n = index.parts.length; n < (old?.parts ?? 0); n++)
          deletes.push({ uri: `${uri}${partsSuffix}/part-${n}` })
        const record = { size: bytes.length, sha256: index.sha256, parts: index.parts.length }
        manifest.set(path, { ...record, ...x })
      }
      // An index, the commit point of its parts, goes in a later request than all of them:
      // OpenViking v0.4.16 applies a batch sorted by URI, not as sent, and keeps the writes
      // before a failed one, so no order within one batch commits anything.
      for (const batch of chunk(puts)) await http.batchWrite(root, batch, what)
      for (const batch of chunk(indexes)) await http.batchWrite(root, batch, what)
      await mapLimit(deletes, deleteConcurrency, (d) => http.remove(d.uri, what, d.recursive))
      await saveManifest(id, manifest)
    })
  }

  async function read(id: string, path: string): Promise<Uint8Array> {
    checkStorePath(path)
    const uri = workspaceRoot(id) + toStoredPath(path)
    const what = `${JSON.stringify(path)} ${inWorkspace(id)}`
    const plain = await http.download(uri, what)
    if (plain) return plain
    const indexBytes = await http.download(`${uri}${partsSuffix}/parts.json`, what)
    if (!indexBytes) throw new NotFoundError(`file "${path}" not found ${inWorkspace(id)}`)
    const index = JSON.parse(new TextDecoder().decode(indexBytes)) as PartsIndex
    const parts = await mapLimit(index.parts, readConcurrency, async (_, n) => {
      const bytes = await http.download(`${uri}${partsSuffix}/part-${n}`, `${what} part ${n}`)
      if (!bytes) throw new UpstreamError(`${http.describe()}: part ${n} of ${what} is missing`)
      return bytes
    })
    const out = new Uint8Array(index.size)
    let at = 0
    for (const part of parts) {
      if (at + part.length > out.length) break
      out.set(part, at)
      at += part.length
    }
    if (at !== index.size || sha256(out) !== index.sha256)
      throw new UpstreamError(`${http.describe()}: the parts of ${what} do not match their index`)
    return out
  }

  /** Store path and size of one `fs/tree` entry, or null for directories and our own files. */
  function fromTreeEntry(id: string, root: string, entry: unknown) {
    if (!isRecord(entry) || entry.isDir === true) return null
    const rel =
      typeof entry.rel_path === 'string'
        ? entry.rel_path
        : String(entry.uri ?? '').slice(root.length)
    const segments = rel.split('/')
    const last = segments[segments.length - 1] ?? ''
    if (rel === manifestName || sidecarNames.has(last)) return null
    const partsAt = segments.findIndex((s) => s.endsWith(partsSuffix))
    const isIndex = partsAt >= 0 && partsAt === segments.length - 2 && last === 'parts.json'
    if (partsAt >= 0 && !isIndex) return null
    const owner = segments[partsAt]?.slice(0, -partsSuffix.length) ?? ''
    const path = fromStoredSegments(isIndex ? [...segments.slice(0, partsAt), owner] : segments)
    if (path === null) {
      options.log?.warn('openviking store skips a name it did not write', { id, name: rel })
      return null
    }
    return { path, size: typeof entry.size === 'number' ? entry.size : 0, isIndex }
  }

  async function list(id: string, prefix?: string): Promise<StoreEntry[]> {
    const root = workspaceRoot(id)
    const under = checkPrefix(prefix)
    const what = `${JSON.stringify(under || '/')} ${inWorkspace(id)}`
    const [manifest, tree] = await Promise.all([
      loadManifest(id),
      http.tree(root, what, treeNodeLimit),
    ])
    if ((tree?.length ?? 0) >= treeNodeLimit)
      options.log?.warn('openviking tree listing may be truncated', { id, nodes: tree?.length })
    // The tree shows files others wrote; the manifest adds what listings hide and wins on size.
    const found = new Map<string, StoreEntry>()
    for (const raw of tree ?? []) {
      const entry = fromTreeEntry(id, root, raw)
      if (!entry || !isUnderPrefix(entry.path, under)) continue
      if (!entry.isIndex) found.set(entry.path, { path: entry.path, size: entry.size })
      else if (!manifest.has(entry.path))
        found.set(entry.path, { path: entry.path, size: (await read(id, entry.path)).length })
    }
    for (const [path, record] of manifest)
      if (isUnderPrefix(path, under))
        found.set(path, {
          path,
          size: record.size,
          ...(record.executable ? { executable: true } : {}),
        })
    return sortEntries([...found.values()])
  }

  async function remove(id: string, given: string[]): Promise<void> {
    const root = workspaceRoot(id)
    const paths = [...new Set(given)]
    for (const path of paths) checkStorePath(path)
    if (paths.length === 0) return
    return withLock(id, async () => {
      const manifest = await loadManifest(id)
      const known = new Map(paths.map((path) => [path, manifest.get(path)]))
      // The manifest goes first: a failed delete then leaves a file listings may show, never a
      // listed file that cannot be read.
      if (paths.map((path) => manifest.delete(path)).some(Boolean)) await saveManifest(id, manifest)
      await mapLimit(paths, deleteConcurrency, async (path) => {
        const uri = root + toStoredPath(path)
        const what = `${JSON.stringify(path)} ${inWorkspace(id)}`
        await http.remove(uri, what)
        const old = known.get(path)
        if (!old || old.parts) await http.remove(uri + partsSuffix, what, true)
      })
      await pruneEmptied(id, manifest, paths)
    })
  }

  /**
   * Removes each directory whose last file just went (with its sidecars): OpenViking keeps
   * empty directories, and a file of the same name could not take its place. A directory the
   * tree still shows a file in (one this store did not write) stays.
   */
  async function pruneEmptied(
    id: string,
    manifest: Map<string, ManifestRecord>,
    removed: string[],
  ): Promise<void> {
    const inUse = new Set<string>()
    for (const path of manifest.keys())
      for (let at = path.indexOf('/'); at >= 0; at = path.indexOf('/', at + 1))
        inUse.add(path.slice(0, at))
    const emptied = new Set<string>()
    for (const path of removed) {
      // The topmost directory left without a file holds every emptied one below it.
      for (let at = path.indexOf('/'); at >= 0; at = path.indexOf('/', at + 1)) {
        const dir = path.slice(0, at)
        if (inUse.has(dir)) continue
        emptied.add(dir)
        break
      }
    }
    if (emptied.size === 0) return
    const root = workspaceRoot(id)
    const what = `${quoted([...emptied])} ${inWorkspace(id)}`
    const tree = (await http.tree(root, what, treeNodeLimit)) ?? []
    if (tree.length >= treeNodeLimit) return
    const listed = tree.flatMap((raw) => fromTreeEntry(id, root, raw)?.path ?? [])
    await mapLimit([...emptied], deleteConcurrency, async (dir) => {
      if (listed.some((path) => isUnderPrefix(path, dir))) return
      await http.remove(root + toStoredPath(dir), what, true)
    })
  }

  return {
    name: 'openviking',
    describe: http.describe,
    list,
    read,
    write: (id, path, bytes) => writeMany(id, [{ path, bytes }]),
    writeMany,
    remove,
  }
}
