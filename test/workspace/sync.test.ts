import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { sql } from 'drizzle-orm'
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Database } from '../../src/db/handle.ts'
import { openDatabase } from '../../src/db/open.ts'
import { createLogger } from '../../src/log.ts'
import { createLocalStore } from '../../src/workspace/local.ts'
import { createWorkspaceLock, type WorkspaceLock } from '../../src/workspace/lock.ts'
import type { Manifest } from '../../src/workspace/manifest.ts'
import { createOpenVikingStore } from '../../src/workspace/openviking.ts'
import type { StoreFile, WorkspaceStore } from '../../src/workspace/store.ts'
import { createWorkspaceSync, type SyncDirs } from '../../src/workspace/sync.ts'
import { createFakeOpenViking, type FakeOpenViking } from '../fakes/openviking.ts'
import { databases } from '../helpers/databases.ts'
import { tempDir, type TempDir } from '../helpers/temp-dir.ts'
import { until } from '../helpers/until.ts'

// Tries per OpenViking request and per sync push; a store outage of the fake lasts exactly
// HTTP_ATTEMPTS * SYNC_ATTEMPTS requests, which is one push (or one spool flush) with all retries.
const HTTP_ATTEMPTS = 2
const SYNC_ATTEMPTS = 2
const silent = createLogger('silent')
const text = (s: string) => new TextEncoder().encode(s)
const sha256 = (b: Uint8Array) => new Bun.CryptoHasher('sha256').update(b).digest('hex')
// Pulled files are their user's only, whatever the umask (executable ones 700).
const FILE_MODE = 0o600
type Tree = Record<string, Uint8Array>

function randomBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size)
  for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, at + 65536))
  return bytes
}

const allBytes = Uint8Array.from({ length: 512 }, (_, i) => (i * 7) % 256)
const transcript = 'projects/-run-s1-project/0d7c2c52-6a1e-4a53-9a43-1f0f7e3b1c11.jsonl'
/** A workspace as a previous turn left it: hidden files, a `tasks` directory, binary, empty. */
const seedConfig: Tree = {
  'settings.json': text('{"theme":"dark"}'),
  '.claude.json': text('{"numStartups":3}'),
  'tasks/s1/1.json': text('{"id":1,"subject":"write tests"}'),
  [transcript]: text('{"type":"user","message":{"role":"user","content":"hi"}}\n'),
}
const seedProject: Tree = {
  'README.md': text('# demo\n'),
  'bin/all-bytes.bin': allBytes,
  empty: new Uint8Array(),
}

const under = (prefix: string, tree: Tree): Tree =>
  Object.fromEntries(Object.entries(tree).map(([p, b]) => [`${prefix}/${p}`, b]))
const filesOf = (tree: Tree): StoreFile[] =>
  Object.entries(tree).map(([path, bytes]) => ({ path, bytes }))
const sizeOf = (tree: Tree) => Object.values(tree).reduce((n, b) => n + b.length, 0)
const manifestOf = (tree: Tree): Manifest =>
  new Map(
    Object.entries(tree)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([path, b]) => [path, { size: b.length, sha256: sha256(b), mode: FILE_MODE }]),
  )
const storeTreeOf = (config: Tree, project: Tree): Tree => ({
  ...under('claude-home', config),
  ...under('project', project),
})

/** Every regular file below `dir`, by relative path. */
async function readTree(dir: string): Promise<Tree> {
  const out: Tree = {}
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const full = join(entry.parentPath, entry.name)
    out[full.slice(dir.length + 1)] = new Uint8Array(await readFile(full))
  }
  return out
}

async function writeTree(dir: string, tree: Tree): Promise<void> {
  for (const [path, bytes] of Object.entries(tree)) {
    await mkdir(dirname(join(dir, path)), { recursive: true })
    await writeFile(join(dir, path), bytes)
  }
}

async function storeTree(store: WorkspaceStore, ws: string): Promise<Tree> {
  const out: Tree = {}
  for (const { path } of await store.list(ws)) out[path] = await store.read(ws, path)
  return out
}

interface StoreCall {
  op: 'list' | 'write' | 'writeMany' | 'remove'
  paths: string[]
}

/**
 * Delegates to `store` and records every list, write and remove, with how many writes and
 * removes of each workspace were in flight at most. `hold`, when set, runs inside a write.
 */
function recording(store: WorkspaceStore) {
  const calls: StoreCall[] = []
  const inFlight = new Map<string, number>()
  const maxInFlight = new Map<string, number>()
  const rec = {
    calls,
    inFlight: (ws: string) => inFlight.get(ws) ?? 0,
    maxInFlight: (ws: string) => maxInFlight.get(ws) ?? 0,
    hold: null as ((call: StoreCall) => Promise<void>) | null,
    store: null as unknown as WorkspaceStore,
  }
  const changing = async (ws: string, call: StoreCall, fn: () => Promise<void>) => {
    calls.push(call)
    inFlight.set(ws, rec.inFlight(ws) + 1)
    maxInFlight.set(ws, Math.max(rec.maxInFlight(ws), rec.inFlight(ws)))
    try {
      await rec.hold?.(call)
      await fn()
    } finally {
      inFlight.set(ws, rec.inFlight(ws) - 1)
    }
  }
  rec.store = {
    name: store.name,
    describe: () => store.describe(),
    list: (ws, prefix) => {
      calls.push({ op: 'list', paths: [prefix ?? ''] })
      return store.list(ws, prefix)
    },
    read: (ws, path) => store.read(ws, path),
    write: (ws, path, bytes) =>
      changing(ws, { op: 'write', paths: [path] }, () => store.write(ws, path, bytes)),
    writeMany: (ws, files) =>
      changing(ws, { op: 'writeMany', paths: files.map((f) => f.path) }, () =>
        store.writeMany(ws, files),
      ),
    remove: (ws, paths) =>
      changing(ws, { op: 'remove', paths: [...paths] }, () => store.remove(ws, paths)),
  }
  return rec
}

/** A lock that counts callers still waiting for it. */
function countingLock(lock: WorkspaceLock) {
  const counts = { waiting: 0 }
  const wrapped: WorkspaceLock = <T>(ws: string, fn: () => Promise<T>) => {
    counts.waiting++
    return lock(ws, () => {
      counts.waiting--
      return fn()
    })
  }
  return { lock: wrapped, counts }
}
const noLock: WorkspaceLock = <T>(_ws: string, fn: () => Promise<T>) => fn()

interface Outage {
  /** Until `end` (local), or for one push or spool flush with all its retries (OpenViking). */
  start(): Promise<void>
  end(): Promise<void>
}

interface StoreKit extends AsyncDisposable {
  store: WorkspaceStore
  fake: FakeOpenViking | null
  outage: Outage
  /** What a push that fails because of the outage throws. */
  outageError: RegExp
}

async function localKit(): Promise<StoreKit> {
  const dir = await tempDir()
  const root = join(dir.path, 'workspaces')
  await mkdir(root)
  return {
    store: createLocalStore({ root }),
    fake: null,
    // A regular file where the store's directory was: every operation fails, nothing is lost.
    outage: {
      start: async () => {
        await rename(root, `${root}.away`)
        await writeFile(root, 'the disk is gone')
      },
      end: async () => {
        await rm(root)
        await rename(`${root}.away`, root)
      },
    },
    outageError: /ENOTDIR|not a directory/,
    [Symbol.asyncDispose]: () => dir[Symbol.asyncDispose](),
  }
}

async function openVikingKit(): Promise<StoreKit> {
  const fake = createFakeOpenViking({ apiKey: 'test-key' })
  const retry = { attempts: HTTP_ATTEMPTS, baseDelayMs: 0 }
  return {
    store: createOpenVikingStore({ url: fake.url, apiKey: 'test-key', retry }),
    fake,
    outage: {
      start: async () =>
        fake.failNext(HTTP_ATTEMPTS * SYNC_ATTEMPTS, { status: 503, code: 'UNAVAILABLE' }),
      end: async () => {},
    },
    outageError:
      /^openviking at http:\/\/127\.0\.0\.1:\d+: .* HTTP 503 UNAVAILABLE: injected UNAVAILABLE \(after 2 attempts\)$/,
    [Symbol.asyncDispose]: () => fake.stop(),
  }
}

let lockDb: Database
let lockDir: TempDir
beforeAll(async () => {
  lockDir = await tempDir()
  lockDb = await openDatabase({ databaseUrl: null, dataDir: lockDir.path, log: silent })
})
afterAll(async () => {
  await lockDb.close()
  await lockDir[Symbol.asyncDispose]()
})

/** A sync over a recording wrapper of `kit.store`, with its spool and worker dirs in `dir`. */
function syncOf(
  kit: StoreKit,
  dir: string,
  opts: { lock?: WorkspaceLock; secrets?: string[]; store?: WorkspaceStore } = {},
) {
  return createWorkspaceSync({
    store: opts.store ?? kit.store,
    lock: opts.lock ?? createWorkspaceLock(lockDb),
    spoolDir: join(dir, 'spool'),
    log: silent,
    secrets: () => opts.secrets ?? [],
    retry: { attempts: SYNC_ATTEMPTS, baseDelayMs: 0 },
  })
}

/** Fresh, empty directories for one turn's worker. */
async function turnDirs(dir: string): Promise<SyncDirs> {
  const base = join(dir, 'turns', crypto.randomUUID())
  const dirs = { configDir: join(base, 'config'), projectDir: join(base, 'project') }
  await mkdir(dirs.configDir, { recursive: true })
  await mkdir(dirs.projectDir, { recursive: true })
  return dirs
}

const STORES = [
  ['local', localKit],
  ['openviking', openVikingKit],
] as const

describe.each(STORES)('workspace sync with the %s store', (kind, open) => {
  const ws = 'ws-1'
  const seed = async (kit: StoreKit) =>
    kit.store.writeMany(ws, [
      ...filesOf(storeTreeOf(seedConfig, seedProject)),
      { path: 'elsewhere/not-a-tree.txt', bytes: text('stays in the store') },
    ])

  test.concurrent(
    'pull fills the config dir from claude-home/ and the project dir from project/, and reports files and bytes',
    async () => {
      await using kit = await open()
      await using dir = await tempDir()
      await seed(kit)
      const dirs = await turnDirs(dir.path)
      const pulled = await syncOf(kit, dir.path).pull(ws, dirs)
      expect(await readTree(dirs.configDir)).toEqual(seedConfig)
      expect(await readTree(dirs.projectDir)).toEqual(seedProject)
      expect(pulled).toEqual({
        before: { config: manifestOf(seedConfig), project: manifestOf(seedProject), revision: -1 },
        files: 7,
        bytes: sizeOf(seedConfig) + sizeOf(seedProject),
        ms: expect.any(Number),
      })
    },
  )

  test.concurrent(
    'a script a worker made executable comes back executable; one it made plain comes back plain',
    async () => {
      await using kit = await open()
      await using dir = await tempDir()
      const sync = syncOf(kit, dir.path)
      const dirs = await turnDirs(dir.path)
      const { before } = await sync.pull(ws, dirs)
      await writeTree(dirs.projectDir, {
        'bin/run.sh': text('#!/bin/sh\necho hi\n'),
        'notes.md': text('plain'),
      })
      await chmod(join(dirs.projectDir, 'bin/run.sh'), 0o755)
      await sync.push(ws, dirs, before)
      const next = await turnDirs(dir.path)
      const again = await sync.pull(ws, next)
      const mode = async (p: string) => (await stat(join(next.projectDir, p))).mode & 0o777
      expect([await mode('bin/run.sh'), await mode('notes.md')]).toEqual([0o700, 0o600])
      // Made plain again in a later turn, it is stored plain.
      await chmod(join(next.projectDir, 'bin/run.sh'), 0o644)
      await sync.push(ws, next, again.before)
      const third = await turnDirs(dir.path)
      await sync.pull(ws, third)
      expect((await stat(join(third.projectDir, 'bin/run.sh'))).mode & 0o777).toBe(0o600)
    },
  )

  test.concurrent('pull of an unknown workspace leaves both directories empty', async () => {
    await using kit = await open()
    await using dir = await tempDir()
    const dirs = await turnDirs(dir.path)
    const pulled = await syncOf(kit, dir.path).pull('never-used', dirs)
    expect(pulled).toEqual({
      before: { config: new Map(), project: new Map(), revision: -1 },
      files: 0,
      bytes: 0,
      ms: expect.any(Number),
    })
    expect([await readTree(dirs.configDir), await readTree(dirs.projectDir)]).toEqual([{}, {}])
  })

  test.concurrent(
    'push after changes writes added and changed files and deletes deleted ones, in both trees',
    async () => {
      await using kit = await open()
      await using dir = await tempDir()
      await seed(kit)
      const rec = recording(kit.store)
      const sync = syncOf(kit, dir.path, { store: rec.store })
      const dirs = await turnDirs(dir.path)
      const { before } = await sync.pull(ws, dirs)
      const big = randomBytes(300_000)
      const added = { config: text('[{"content":"ship it"}]'), project: big }
      await writeTree(dirs.configDir, { 'todos/t1.json': added.config })
      await writeTree(dirs.projectDir, { 'deep/a/b/c/d.bin': big, 'README.md': text('# v2\n') })
      await rm(join(dirs.projectDir, 'bin/all-bytes.bin'))
      await rm(join(dirs.configDir, 'tasks/s1/1.json'))
      rec.calls.length = 0

      const pushed = await sync.push(ws, dirs, before)
      expect(pushed).toEqual({
        written: 3,
        deleted: 2,
        bytes: added.config.length + big.length + 5,
        skipped: [],
        refused: [],
        after: expect.any(Object),
        ms: expect.any(Number),
      })
      expect(rec.calls).toEqual([
        { op: 'remove', paths: ['claude-home/tasks/s1/1.json', 'project/bin/all-bytes.bin'] },
        {
          op: 'writeMany',
          paths: ['claude-home/todos/t1.json', 'project/deep/a/b/c/d.bin', 'project/README.md'],
        },
      ])
      const { 'tasks/s1/1.json': _task, ...config } = seedConfig
      const { 'bin/all-bytes.bin': _bin, ...project } = seedProject
      const expected = {
        config: { ...config, 'todos/t1.json': added.config },
        project: { ...project, 'deep/a/b/c/d.bin': big, 'README.md': text('# v2\n') },
      }
      expect(await storeTree(kit.store, ws)).toEqual({
        ...storeTreeOf(expected.config, expected.project),
        'elsewhere/not-a-tree.txt': text('stays in the store'),
      })
      // The next turn starts from exactly that.
      const next = await turnDirs(dir.path)
      await sync.pull(ws, next)
      expect([await readTree(next.configDir), await readTree(next.projectDir)]).toEqual([
        expected.config,
        expected.project,
      ])
    },
  )

  test.concurrent('an unchanged tree pushes nothing: no store write of any kind', async () => {
    await using kit = await open()
    await using dir = await tempDir()
    await seed(kit)
    const rec = recording(kit.store)
    const sync = syncOf(kit, dir.path, { store: rec.store })
    const dirs = await turnDirs(dir.path)
    const { before } = await sync.pull(ws, dirs)
    rec.calls.length = 0
    const requestsBefore = kit.fake?.requests.length ?? 0

    expect(await sync.push(ws, dirs, before)).toEqual({
      written: 0,
      deleted: 0,
      bytes: 0,
      skipped: [],
      refused: [],
      after: expect.any(Object),
      ms: expect.any(Number),
    })
    expect(rec.calls).toEqual([])
    expect(kit.fake?.requests.slice(requestsBefore) ?? []).toEqual([])
    // The contrast: touching one file's content is a write.
    await writeFile(join(dirs.projectDir, 'empty'), 'x')
    expect((await sync.push(ws, dirs, before)).written).toBe(1)
    expect(rec.calls).toEqual([{ op: 'writeMany', paths: ['project/empty'] }])
  })

  test.concurrent(
    'files holding a secret value and claude-home/.credentials.json are never written',
    async () => {
      await using kit = await open()
      await using dir = await tempDir()
      const secret = 'sk-ant-api03-very-secret-value-0123456789'
      const rec = recording(kit.store)
      const sync = syncOf(kit, dir.path, { store: rec.store, secrets: [secret, 'short'] })
      const dirs = await turnDirs(dir.path)
      const { before } = await sync.pull(ws, dirs)
      rec.calls.length = 0
      const binary = new Uint8Array([...randomBytes(1000), ...text(secret), ...randomBytes(1000)])
      await writeTree(dirs.configDir, {
        '.credentials.json': text('{"claudeAiOauth":{"accessToken":"sk-ant-oat01-x"}}'),
        'cache/blob.bin': binary,
        'settings.json': text('{"env":{"SHORT":"short"}}'),
      })
      await writeTree(dirs.projectDir, {
        '.env': text(`ANTHROPIC_API_KEY=${secret}\n`),
        'notes.md': text('nothing to hide'),
      })

      expect(await sync.push(ws, dirs, before)).toEqual({
        written: 2,
        deleted: 0,
        bytes: '{"env":{"SHORT":"short"}}'.length + 'nothing to hide'.length,
        skipped: ['claude-home/cache/blob.bin', 'project/.env'],
        refused: [],
        after: expect.any(Object),
        ms: expect.any(Number),
      })
      expect(rec.calls).toEqual([
        { op: 'writeMany', paths: ['claude-home/settings.json', 'project/notes.md'] },
      ])
      expect(await storeTree(kit.store, ws)).toEqual({
        'claude-home/settings.json': text('{"env":{"SHORT":"short"}}'),
        'project/notes.md': text('nothing to hide'),
      })
    },
  )

  test.concurrent(
    'store down during push: push throws, the changes wait in the spool; the next pull pushes them first, then pulls',
    async () => {
      await using kit = await open()
      await using dir = await tempDir()
      await seed(kit)
      const rec = recording(kit.store)
      const sync = syncOf(kit, dir.path, { store: rec.store })
      const dirs = await turnDirs(dir.path)
      const { before } = await sync.pull(ws, dirs)
      await writeTree(dirs.configDir, {
        [transcript]: text('{"type":"user"}\n{"type":"assistant"}\n'),
      })
      await writeTree(dirs.projectDir, { 'src/new.bin': allBytes })
      await rm(join(dirs.projectDir, 'README.md'))

      await kit.outage.start()
      await expect(sync.push(ws, dirs, before)).rejects.toThrow(kit.outageError)
      expect(await sync.pendingSpools(ws)).toBe(1)
      await kit.outage.end()
      expect(await storeTree(kit.store, ws)).toEqual({
        ...storeTreeOf(seedConfig, seedProject),
        'elsewhere/not-a-tree.txt': text('stays in the store'),
      })
      // The turn's own directories are gone, as after every turn.
      await rm(dirname(dirs.configDir), { recursive: true })

      rec.calls.length = 0
      const next = await turnDirs(dir.path)
      const pulled = await sync.pull(ws, next)
      const { 'README.md': _readme, ...project } = seedProject
      const projectAfter = { ...project, 'src/new.bin': allBytes }
      const configAfter = {
        ...seedConfig,
        [transcript]: text('{"type":"user"}\n{"type":"assistant"}\n'),
      }
      expect([await readTree(next.configDir), await readTree(next.projectDir)]).toEqual([
        configAfter,
        projectAfter,
      ])
      expect(pulled.files).toBe(7)
      expect(rec.calls).toEqual([
        { op: 'remove', paths: ['project/README.md'] },
        { op: 'writeMany', paths: [`claude-home/${transcript}`, 'project/src/new.bin'] },
        { op: 'list', paths: ['claude-home'] },
        { op: 'list', paths: ['project'] },
      ])
      expect(await sync.pendingSpools(ws)).toBe(0)
    },
  )

  test.concurrent(
    'store still down at the next pull: the pull throws and keeps the spool; once back, nothing is lost',
    async () => {
      await using kit = await open()
      await using dir = await tempDir()
      const sync = syncOf(kit, dir.path)
      const dirs = await turnDirs(dir.path)
      const { before } = await sync.pull(ws, dirs)
      await writeTree(dirs.projectDir, { 'a.txt': text('turn one') })
      await kit.outage.start()
      await expect(sync.push(ws, dirs, before)).rejects.toThrow(kit.outageError)
      if (kind === 'openviking') await kit.outage.start()

      await expect(sync.pull(ws, await turnDirs(dir.path))).rejects.toThrow(kit.outageError)
      expect(await sync.pendingSpools(ws)).toBe(1)
      await kit.outage.end()

      const next = await turnDirs(dir.path)
      expect((await sync.pull(ws, next)).files).toBe(1)
      expect(await readTree(next.projectDir)).toEqual({ 'a.txt': text('turn one') })
      expect(await sync.pendingSpools(ws)).toBe(0)
    },
  )

  test.concurrent(
    'a push that fails is spooled before the next push of the workspace runs: the later push wins',
    async () => {
      await using kit = await open()
      await using dir = await tempDir()
      await kit.store.write(ws, 'project/shared.txt', text('seed'))
      // The first push to take the lock holds it until the other waits for it, fails (store
      // down), and the store comes back as it gives up: the other push then succeeds.
      const { lock: counted, counts } = countingLock(createWorkspaceLock(lockDb))
      let taken = true
      const lock: WorkspaceLock = (id, fn) =>
        counted(id, async () => {
          if (taken) return fn()
          taken = true
          await until(() => counts.waiting > 0, { what: 'the other push to wait for the lock' })
          try {
            return await fn()
          } finally {
            await kit.outage.end()
          }
        })
      const sync = syncOf(kit, dir.path, { lock })
      const [a, b] = [await turnDirs(dir.path), await turnDirs(dir.path)]
      const [pa, pb] = [await sync.pull(ws, a), await sync.pull(ws, b)]
      await writeFile(join(a.projectDir, 'shared.txt'), 'from turn A')
      await writeFile(join(b.projectDir, 'shared.txt'), 'from turn B')

      await kit.outage.start()
      taken = false
      const settled = await Promise.allSettled([
        sync.push(ws, a, pa.before),
        sync.push(ws, b, pb.before),
      ])
      expect(settled.map((s) => s.status).sort()).toEqual(['fulfilled', 'rejected'])
      const failed = settled.find((s) => s.status === 'rejected') as PromiseRejectedResult
      expect(failed.reason.message).toMatch(kit.outageError)
      const winner = settled[0]!.status === 'fulfilled' ? 'from turn A' : 'from turn B'
      const next = await turnDirs(dir.path)
      await sync.pull(ws, next)
      expect(await readTree(next.projectDir)).toEqual({ 'shared.txt': text(winner) })
      expect(await sync.pendingSpools(ws)).toBe(0)
    },
  )

  test.concurrent(
    'two concurrent pushes of one workspace never interleave their store writes',
    async () => {
      await using kit = await open()
      await using dir = await tempDir()
      await seed(kit)
      const rec = recording(kit.store)
      const { lock, counts } = countingLock(createWorkspaceLock(lockDb))
      const sync = syncOf(kit, dir.path, { store: rec.store, lock })
      const [a, b] = [await turnDirs(dir.path), await turnDirs(dir.path)]
      const [pa, pb] = [await sync.pull(ws, a), await sync.pull(ws, b)]
      await writeTree(a.projectDir, { 'from-a.txt': text('a') })
      await writeTree(b.configDir, { 'projects/-run-s2-project/s2.jsonl': text('{"b":1}\n') })
      await writeTree(b.projectDir, { 'from-b.txt': text('b') })
      // The first write waits until the other push is queued behind the lock or overlaps it.
      let held = false
      rec.hold = async (call) => {
        if (held || call.op !== 'writeMany') return
        held = true
        await until(() => counts.waiting > 0 || rec.inFlight(ws) > 1, {
          what: 'the second push to wait for the lock or to overlap the first',
        })
      }
      rec.calls.length = 0

      await Promise.all([sync.push(ws, a, pa.before), sync.push(ws, b, pb.before)])
      expect(rec.maxInFlight(ws)).toBe(1)
      expect(rec.calls.map((c) => c.paths).sort()).toEqual([
        ['claude-home/projects/-run-s2-project/s2.jsonl', 'project/from-b.txt'],
        ['project/from-a.txt'],
      ])
      const stored = await storeTree(kit.store, ws)
      expect([stored['project/from-a.txt'], stored['project/from-b.txt']]).toEqual([
        text('a'),
        text('b'),
      ])
    },
  )

  test.concurrent('the contrast: without the lock the same two pushes overlap', async () => {
    await using kit = await open()
    await using dir = await tempDir()
    const rec = recording(kit.store)
    const { lock, counts } = countingLock(noLock)
    const sync = syncOf(kit, dir.path, { store: rec.store, lock })
    const [a, b] = [await turnDirs(dir.path), await turnDirs(dir.path)]
    const [pa, pb] = [await sync.pull(ws, a), await sync.pull(ws, b)]
    await writeTree(a.projectDir, { 'from-a.txt': text('a') })
    await writeTree(b.projectDir, { 'from-b.txt': text('b') })
    let held = false
    rec.hold = async () => {
      if (held) return
      held = true
      await until(() => counts.waiting > 0 || rec.inFlight(ws) > 1, { what: 'an overlap' })
    }
    await Promise.all([sync.push(ws, a, pa.before), sync.push(ws, b, pb.before)])
    expect(rec.maxInFlight(ws)).toBe(2)
  })

  test.concurrent(
    'a file replaced by a directory of the same name, and a directory by a file, are pushed',
    async () => {
      await using kit = await open()
      await using dir = await tempDir()
      await kit.store.writeMany(ws, [
        { path: 'project/docs', bytes: text('was a file') },
        { path: 'project/lib/a.js', bytes: text('was in a directory') },
      ])
      const sync = syncOf(kit, dir.path)
      const dirs = await turnDirs(dir.path)
      const { before } = await sync.pull(ws, dirs)
      await rm(join(dirs.projectDir, 'docs'))
      await rm(join(dirs.projectDir, 'lib'), { recursive: true })
      const after = { 'docs/index.md': text('now a directory'), lib: text('now a file') }
      await writeTree(dirs.projectDir, after)

      expect(await sync.push(ws, dirs, before)).toEqual({
        written: 2,
        deleted: 2,
        bytes: sizeOf(after),
        skipped: [],
        refused: [],
        after: expect.any(Object),
        ms: expect.any(Number),
      })
      expect(await sync.pendingSpools(ws)).toBe(0)
      expect(await storeTree(kit.store, ws)).toEqual(under('project', after))
    },
  )

  test.concurrent(
    'names Linux allows but resolveInside reads as special ("~" first, a backslash) come back where they were',
    async () => {
      await using kit = await open()
      await using dir = await tempDir()
      const sync = syncOf(kit, dir.path)
      const dirs = await turnDirs(dir.path)
      const { before } = await sync.pull(ws, dirs)
      const files: Tree = {
        '~$report.docx': text('office owner file'),
        'docs/~backup': text('tilde dir entry'),
        'a\\b.txt': text('one file, not a/b.txt'),
        'ok.txt': text('plain'),
      }
      await writeTree(dirs.projectDir, files)
      const pushed = await sync.push(ws, dirs, before)
      // The local store cannot keep a backslash in a name: it says so and keeps the rest.
      const refused = kind === 'local' ? ['project/a\\b.txt'] : []
      expect(pushed).toEqual({
        written: 4 - refused.length,
        deleted: 0,
        bytes: sizeOf(files) - (kind === 'local' ? files['a\\b.txt']!.length : 0),
        skipped: refused,
        refused: refused.map((path) => ({ path, error: expect.stringContaining(path) })),
        after: expect.any(Object),
        ms: expect.any(Number),
      })
      expect(await sync.pendingSpools(ws)).toBe(0)
      const next = await turnDirs(dir.path)
      await sync.pull(ws, next)
      const { 'a\\b.txt': _backslash, ...kept } = files
      expect(await readTree(next.projectDir)).toEqual(kind === 'local' ? kept : files)
    },
  )
})

// PGlite is one process per data directory, so only Postgres has a second broker to exclude.
const postgresOnly = databases().filter((d) => d.name === 'postgres')
describe.each(postgresOnly)('the workspace lock on $name', (db) => {
  test.concurrent(
    'two syncs on two separate database connections never interleave pushes of one workspace',
    async () => {
      await using kit = await localKit()
      await using dir = await tempDir()
      const created = await db.create()
      const [one, two] = await Promise.all(
        ['one', 'two'].map((name) =>
          openDatabase({ databaseUrl: created.url, dataDir: join(dir.path, name), log: silent }),
        ),
      )
      try {
        const rec = recording(kit.store)
        const syncs = [one!, two!].map((database) =>
          syncOf(kit, dir.path, { store: rec.store, lock: createWorkspaceLock(database) }),
        ) as [ReturnType<typeof syncOf>, ReturnType<typeof syncOf>]
        const ws = 'shared-ws'
        const [a, b] = [await turnDirs(dir.path), await turnDirs(dir.path)]
        const [pa, pb] = [await syncs[0].pull(ws, a), await syncs[1].pull(ws, b)]
        await writeTree(a.projectDir, { 'from-a.txt': text('a') })
        await writeTree(b.projectDir, { 'from-b.txt': text('b') })
        // Waiters on this database's advisory locks: the other broker blocked behind ours.
        const blocked = async () => {
          const rows = (await one!.db.execute(
            sql`select count(*)::int as n from pg_locks l join pg_database d on d.oid = l.database
                where l.locktype = 'advisory' and not l.granted and d.datname = current_database()`,
          )) as unknown as { n: number }[]
          return rows[0]!.n
        }
        let held = false
        rec.hold = async () => {
          if (held) return
          held = true
          await until(async () => rec.inFlight(ws) > 1 || (await blocked()) > 0, {
            what: 'the second broker to block on the advisory lock or to overlap',
          })
        }
        await Promise.all([syncs[0].push(ws, a, pa.before), syncs[1].push(ws, b, pb.before)])
        expect(rec.maxInFlight(ws)).toBe(1)
        expect(
          rec.calls
            .filter((c) => c.op === 'writeMany')
            .map((c) => c.paths)
            .sort(),
        ).toEqual([['project/from-a.txt'], ['project/from-b.txt']])
      } finally {
        await Promise.all([one!.close(), two!.close()])
        await created.drop()
      }
    },
  )
})
