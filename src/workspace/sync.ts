import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Logger } from '../log.ts'
import type { WorkspaceLock } from './lock.ts'
import { diffManifests, scanTree, type Manifest } from './manifest.ts'
import { resolveInside } from './paths.ts'
import { mapLimit, type StoreFile, type WorkspaceStore } from './store.ts'

/** The two trees a worker gets, by their prefix in the store. */
export interface SyncDirs {
  /** `claude-home/` → CLAUDE_CONFIG_DIR. */
  configDir: string
  /** `project/` → the working directory. */
  projectDir: string
}

export interface PullResult {
  before: { config: Manifest; project: Manifest }
  files: number
  bytes: number
  ms: number
}

export interface PushResult {
  written: number
  deleted: number
  bytes: number
  skipped: string[]
  ms: number
}

const TREES = [
  { prefix: 'claude-home', key: 'config' },
  { prefix: 'project', key: 'project' },
] as const

const CONCURRENCY = 8
/** Files never synced: Claude Code's own credentials (secrets are injected per worker). */
const NEVER = new Set(['claude-home/.credentials.json'])

interface SpoolEntry {
  id: string
  dir: string
}

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
}) {
  const { store, log } = deps
  const retry = deps.retry ?? { attempts: 3, baseDelayMs: 500 }

  const withRetry = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn()
      } catch (err) {
        if (attempt >= retry.attempts) throw err
        log.warn(`${what} failed; retrying`, { attempt, err: (err as Error).message })
        await Bun.sleep(retry.baseDelayMs * 2 ** (attempt - 1))
      }
    }
  }

  const spools = async (workspaceId: string): Promise<SpoolEntry[]> => {
    const base = join(deps.spoolDir, workspaceId)
    const names = await readdir(base).catch(() => [] as string[])
    return names
      .filter((n) => !n.startsWith('.') && !n.endsWith('.tmp'))
      .sort()
      .map((id) => ({ id, dir: join(base, id) }))
  }

  /** Pushes spooled changes of earlier turns, oldest first; each is removed once stored. */
  async function flushSpools(workspaceId: string) {
    for (const spool of await spools(workspaceId)) {
      const meta = JSON.parse(await readFile(join(spool.dir, 'changes.json'), 'utf8')) as {
        written: string[]
        deleted: string[]
      }
      const files: StoreFile[] = await mapLimit(meta.written, CONCURRENCY, async (path) => ({
        path,
        bytes: new Uint8Array(await readFile(join(spool.dir, 'files', path))),
      }))
      await withRetry(`pushing spooled changes to ${store.describe()}`, async () => {
        if (files.length > 0) await store.writeMany(workspaceId, files)
        if (meta.deleted.length > 0) await store.remove(workspaceId, meta.deleted)
      })
      await rm(spool.dir, { recursive: true, force: true })
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
        let files = 0
        let bytes = 0
        for (const tree of TREES) {
          const root = tree.key === 'config' ? dirs.configDir : dirs.projectDir
          const entries = await store.list(workspaceId, tree.prefix)
          await mapLimit(entries, CONCURRENCY, async (entry) => {
            const content = await store.read(workspaceId, entry.path)
            const target = await resolveInside(root, entry.path.slice(tree.prefix.length + 1))
            await mkdir(dirname(target), { recursive: true })
            await writeFile(target, content)
            files++
            bytes += content.byteLength
          })
        }
        const [config, project] = await Promise.all([
          scanTree(dirs.configDir),
          scanTree(dirs.projectDir),
        ])
        return {
          before: { config: config.files, project: project.files },
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
    async push(workspaceId: string, dirs: SyncDirs, before: PullResult['before']): Promise<PushResult> {
      const started = performance.now()
      const secrets = deps.secrets().filter((s) => s.length >= 8)
      const written: StoreFile[] = []
      const deleted: string[] = []
      const skipped: string[] = []
      for (const tree of TREES) {
        const root = tree.key === 'config' ? dirs.configDir : dirs.projectDir
        const after = (await scanTree(root)).files
        const diff = diffManifests(before[tree.key], after)
        for (const rel of [...diff.added, ...diff.changed]) {
          const path = `${tree.prefix}/${rel}`
          if (NEVER.has(path)) continue
          const bytes = new Uint8Array(await readFile(join(root, rel)))
          if (containsSecret(bytes, secrets)) {
            skipped.push(path)
            continue
          }
          written.push({ path, bytes })
        }
        for (const rel of diff.deleted) deleted.push(`${tree.prefix}/${rel}`)
      }
      const bytes = written.reduce((n, f) => n + f.bytes.byteLength, 0)
      if (skipped.length > 0)
        log.warn('files holding a secret were not stored in the workspace', { workspaceId, skipped })
      if (written.length === 0 && deleted.length === 0)
        return { written: 0, deleted: 0, bytes: 0, skipped, ms: Math.round(performance.now() - started) }
      try {
        await deps.lock(workspaceId, async () => {
          await flushSpools(workspaceId)
          await withRetry(`pushing to ${store.describe()}`, async () => {
            if (written.length > 0) await store.writeMany(workspaceId, written)
            if (deleted.length > 0) await store.remove(workspaceId, deleted)
          })
        })
      } catch (err) {
        await spool(workspaceId, written, deleted)
        throw err
      }
      return {
        written: written.length,
        deleted: deleted.length,
        bytes,
        skipped,
        ms: Math.round(performance.now() - started),
      }
    },

    flushSpools: (workspaceId: string) => deps.lock(workspaceId, () => flushSpools(workspaceId)),
    pendingSpools: async (workspaceId: string) => (await spools(workspaceId)).length,
  }

  async function spool(workspaceId: string, written: StoreFile[], deleted: string[]) {
    // Time-ordered names: spools are pushed in the order the turns ended.
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
      JSON.stringify({ written: written.map((f) => f.path), deleted }),
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
