import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { BrokerError, StoreRefusedError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { WorkspaceLock } from './lock.ts'
import { diffManifests, scanTree, type Manifest } from './manifest.ts'
import { checkStorePath, mapLimit, type StoreFile, type WorkspaceStore } from './store.ts'

/** The two trees a worker gets, by their prefix in the store. */
export interface SyncDirs {
  /** `claude-home/` → CLAUDE_CONFIG_DIR. */
  configDir: string
  /** `project/` → the working directory. */
  projectDir: string
  /**
   * Claude Code keeps a session's transcripts under `projects/<its working directory's key>`,
   * a path that differs between replicas (each has its own run directory). The store keeps them
   * under a key of the session instead: `stored` there is `local` in the config directory.
   */
  transcripts?: { local: string; stored: string }
}

/** Maps `projects/<from>/…` to `projects/<to>/…`; other paths stay. */
function renameProject(path: string, from: string, to: string): string {
  const prefix = `projects/${from}/`
  return path.startsWith(prefix) ? `projects/${to}/${path.slice(prefix.length)}` : path
}

/** What a worker's directories hold, as of the store's `revision` (-1: unknown). */
export interface TreeState {
  config: Manifest
  project: Manifest
  revision: number
}

/** The workspace's revision counter: raised by every change to its store. */
export interface Revisions {
  read(workspaceId: string): Promise<number>
  bump(workspaceId: string): Promise<number>
}

export interface PullResult {
  before: TreeState
  files: number
  bytes: number
  ms: number
}

export interface PushResult {
  written: number
  deleted: number
  bytes: number
  /** Files not stored: they hold a secret, or the store refused their name. */
  skipped: string[]
  /** The files the store refused, with its answer. */
  refused: Refused[]
  /** The directories as pushed: the `before` of the next push from the same directories. */
  after: TreeState
  ms: number
}

export interface Refused {
  path: string
  error: string
}

const TREES = [
  { prefix: 'claude-home', key: 'config' },
  { prefix: 'project', key: 'project' },
] as const

const CONCURRENCY = 8
/** Sessions' own transcripts: no other session's worker reads them. */
const TRANSCRIPTS = 'claude-home/projects/'
/** Files never synced: Claude Code's own credentials (secrets are injected per worker). */
const NEVER = new Set(['claude-home/.credentials.json'])

interface SpoolEntry {
  id: string
  dir: string
}

/** The store refused the request itself (a name it cannot keep, a type clash): no retry helps. */
const isRefusal = (err: unknown) =>
  err instanceof StoreRefusedError ||
  (err instanceof BrokerError && err.status >= 400 && err.status < 500)

/**
 * Pulls a workspace into a worker's directories before a turn and pushes back what the turn
 * added, changed or deleted. A push that fails is retried; if it still fails the changes are
 * kept in a spool on local disk and pushed first by the next pull or push of that workspace,
 * so no change is lost because the store was down.
 */
export function createWorkspaceSync(deps: {
  store: WorkspaceStore
  lock: WorkspaceLock
  spoolDir: string
  log: Logger
  /** Values that must never be written into a workspace (API keys, tokens). */
  secrets: () => string[]
  retry?: { attempts: number; baseDelayMs: number }
  /** Without one, revisions are unknown (-1) and a warm worker is never reused. */
  revisions?: Revisions
}) {
  const { store, log } = deps
  // The store client has its own retry budget; the sync does not retry on top of it by default.
  const retry = deps.retry ?? { attempts: 1, baseDelayMs: 500 }

  const withRetry = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn()
      } catch (err) {
        if (attempt >= retry.attempts || isRefusal(err)) throw err
        log.warn(`${what} failed; retrying`, { attempt, err: (err as Error).message })
        await Bun.sleep(retry.baseDelayMs * 2 ** (attempt - 1))
      }
    }
  }

  /** Writes `files` one by one after the store refused them as a batch; answers the refused. */
  async function writeEach(workspaceId: string, files: StoreFile[]): Promise<Refused[]> {
    const refused: Refused[] = []
    for (const file of files) {
      try {
        await store.writeMany(workspaceId, [file])
      } catch (err) {
        if (!isRefusal(err)) throw err
        refused.push({ path: file.path, error: (err as Error).message })
        // A refusal is a request the store will never take: a bug to see, not to wait out.
        log.error('the store refused a workspace file; it is not kept', {
          workspaceId,
          path: file.path,
          err: (err as Error).message,
        })
      }
    }
    return refused
  }

  /**
   * Deletes, then writes: a file replaced by a directory of the same name needs the file gone
   * first. A file the store refuses is left out and answered, so that it holds back neither
   * the other files nor (from a spool) every later turn of the workspace.
   */
  async function apply(workspaceId: string, files: StoreFile[], deleted: string[], what: string) {
    return withRetry(what, async () => {
      if (deleted.length > 0) await store.remove(workspaceId, deleted)
      if (files.length === 0) return [] as Refused[]
      try {
        await store.writeMany(workspaceId, files)
        return []
      } catch (err) {
        if (!isRefusal(err)) throw err
        return writeEach(workspaceId, files)
      }
    })
  }

  const spools = async (workspaceId: string): Promise<SpoolEntry[]> => {
    const base = join(deps.spoolDir, workspaceId)
    const names = await readdir(base).catch(() => [] as string[])
    return names
      .filter((n) => !n.startsWith('.') && !n.endsWith('.tmp'))
      .sort()
      .map((id) => ({ id, dir: join(base, id) }))
  }

  /**
   * The store changed in what every worker of the workspace reads (not only a session's own
   * transcripts): raised under the workspace lock, so no other push comes in between.
   */
  const bump = async (workspaceId: string, paths: string[]) =>
    deps.revisions && paths.some((p) => !p.startsWith(TRANSCRIPTS))
      ? deps.revisions.bump(workspaceId)
      : null

  /** Pushes spooled changes of earlier turns, oldest first; each is removed once stored. */
  async function flushSpools(workspaceId: string) {
    for (const spool of await spools(workspaceId)) {
      const meta = JSON.parse(await readFile(join(spool.dir, 'changes.json'), 'utf8')) as {
        written: string[]
        executable?: string[]
        deleted: string[]
      }
      const executable = new Set(meta.executable ?? [])
      const files: StoreFile[] = await mapLimit(meta.written, CONCURRENCY, async (path) => ({
        path,
        bytes: new Uint8Array(await readFile(join(spool.dir, 'files', path))),
        executable: executable.has(path),
      }))
      await apply(
        workspaceId,
        files,
        meta.deleted,
        `pushing spooled changes to ${store.describe()}`,
      )
      await rm(spool.dir, { recursive: true, force: true })
      await bump(workspaceId, [...meta.written, ...meta.deleted])
      log.info('pushed spooled workspace changes', { workspaceId, spool: spool.id })
    }
  }

  const containsSecret = (bytes: Uint8Array, secrets: string[]) => {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    return secrets.some((s) => buf.includes(s))
  }

  return {
    /** Fills the (empty) directories from the store. Throws when the store cannot be read. */
    async pull(workspaceId: string, dirs: SyncDirs): Promise<PullResult> {
      const started = performance.now()
      return deps.lock(workspaceId, async () => {
        await flushSpools(workspaceId)
        const revision = deps.revisions ? await deps.revisions.read(workspaceId) : -1
        let files = 0
        let bytes = 0
        for (const tree of TREES) {
          const root = tree.key === 'config' ? dirs.configDir : dirs.projectDir
          const entries = await store.list(workspaceId, tree.prefix)
          await mapLimit(entries, CONCURRENCY, async (entry) => {
            // Store paths are checked relative paths, and the directories are new and hold no
            // symlink. resolveInside would read a leading "~" as home and "\" as a separator.
            let segments = checkStorePath(entry.path).slice(1)
            if (segments.length === 0) return
            const t = dirs.transcripts
            if (tree.key === 'config' && t)
              segments = renameProject(segments.join('/'), t.stored, t.local).split('/')
            const content = await store.read(workspaceId, entry.path)
            const target = join(root, ...segments)
            await mkdir(dirname(target), { recursive: true })
            await writeFile(target, content, { mode: entry.executable ? 0o700 : 0o600 })
            files++
            bytes += content.byteLength
          })
        }
        const [config, project] = await Promise.all([
          scanTree(dirs.configDir),
          scanTree(dirs.projectDir),
        ])
        return {
          before: { config: config.files, project: project.files, revision },
          files,
          bytes,
          ms: Math.round(performance.now() - started),
        }
      })
    },

    /**
     * Stores what changed since the pull (deletions too). When the store stays down, the
     * changes go to the spool and the error is rethrown; nothing is lost.
     */
    async push(workspaceId: string, dirs: SyncDirs, before: TreeState): Promise<PushResult> {
      const started = performance.now()
      const secrets = deps.secrets().filter((s) => s.length >= 8)
      const written: StoreFile[] = []
      const deleted: string[] = []
      const skipped: string[] = []
      const scanned = { config: before.config, project: before.project }
      for (const tree of TREES) {
        const root = tree.key === 'config' ? dirs.configDir : dirs.projectDir
        const after = (await scanTree(root)).files
        scanned[tree.key] = after
        const diff = diffManifests(before[tree.key], after)
        const t = tree.key === 'config' ? dirs.transcripts : undefined
        const stored = (rel: string) =>
          `${tree.prefix}/${t ? renameProject(rel, t.local, t.stored) : rel}`
        for (const rel of [...diff.added, ...diff.changed]) {
          const path = stored(rel)
          if (NEVER.has(path)) continue
          const bytes = new Uint8Array(await readFile(join(root, rel)))
          if (containsSecret(bytes, secrets)) {
            skipped.push(path)
            continue
          }
          const executable = ((after.get(rel)?.mode ?? 0) & 0o100) !== 0
          written.push({ path, bytes, executable })
        }
        for (const rel of diff.deleted) deleted.push(stored(rel))
      }
      if (skipped.length > 0)
        log.warn('files holding a secret were not stored in the workspace', {
          workspaceId,
          skipped,
        })
      if (written.length === 0 && deleted.length === 0)
        return {
          written: 0,
          deleted: 0,
          bytes: 0,
          skipped,
          refused: [],
          after: { ...scanned, revision: before.revision },
          ms: Math.round(performance.now() - started),
        }
      let revision = -1
      const refused = await deps.lock(workspaceId, async () => {
        try {
          await flushSpools(workspaceId)
          const refused = await apply(
            workspaceId,
            written,
            deleted,
            `pushing to ${store.describe()}`,
          )
          // Only this push since `before`: the directories are the store at the new revision.
          const now = await bump(workspaceId, [...written.map((f) => f.path), ...deleted])
          if (now === null) revision = before.revision
          else if (before.revision >= 0 && now === before.revision + 1) revision = now
          return refused
        } catch (err) {
          // Spooled while the lock is held: whoever takes it next pushes these changes before
          // its own, so a later turn's files are never overwritten by an earlier turn's.
          await spool(workspaceId, written, deleted)
          throw err
        }
      })
      const refusedPaths = new Set(refused.map((r) => r.path))
      const stored = written.filter((f) => !refusedPaths.has(f.path))
      return {
        written: stored.length,
        deleted: deleted.length,
        bytes: stored.reduce((n, f) => n + f.bytes.byteLength, 0),
        skipped: [...skipped, ...refusedPaths].sort(),
        refused,
        after: { ...scanned, revision },
        ms: Math.round(performance.now() - started),
      }
    },

    /** Whether the store is still at `revision`: nobody changed it since. */
    async unchanged(workspaceId: string, revision: number): Promise<boolean> {
      if (revision < 0 || !deps.revisions) return false
      return (await deps.revisions.read(workspaceId)) === revision
    },

    /** Pushes every workspace's spooled changes (a store that was down may be back). */
    async flushAll() {
      for (const workspaceId of await readdir(deps.spoolDir).catch(() => [] as string[])) {
        if ((await spools(workspaceId)).length === 0) continue
        await deps
          .lock(workspaceId, () => flushSpools(workspaceId))
          .catch((err) =>
            log.debug('spooled workspace changes still wait for the store', {
              workspaceId,
              err: (err as Error).message,
            }),
          )
      }
    },

    flushSpools: (workspaceId: string) => deps.lock(workspaceId, () => flushSpools(workspaceId)),
    pendingSpools: async (workspaceId: string) => (await spools(workspaceId)).length,
  }

  async function spool(workspaceId: string, written: StoreFile[], deleted: string[]) {
    // Time-ordered names, made under the lock: spools are pushed in the order they were made.
    const dir = join(deps.spoolDir, workspaceId, Bun.randomUUIDv7())
    const tmp = `${dir}.tmp`
    for (const f of written) {
      const target = join(tmp, 'files', f.path)
      await mkdir(dirname(target), { recursive: true })
      await writeFile(target, f.bytes)
    }
    await mkdir(tmp, { recursive: true })
    await writeFile(
      join(tmp, 'changes.json'),
      JSON.stringify({
        written: written.map((f) => f.path),
        executable: written.filter((f) => f.executable).map((f) => f.path),
        deleted,
      }),
    )
    await rm(dir, { recursive: true, force: true })
    await rename(tmp, dir)
    log.warn('workspace push failed; changes kept on local disk until the store is back', {
      workspaceId,
      spool: dir,
    })
  }
}

export type WorkspaceSync = ReturnType<typeof createWorkspaceSync>
