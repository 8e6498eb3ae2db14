// Benchmark of workspace sync: pull and push of a 1,000-file, 50 MiB workspace (mostly small
// files, a few multi-MiB ones, random binary content) with the local store and with the fake
// OpenViking server (test/fakes/openviking.ts, in this process), then a push of the unchanged
// tree (must write nothing) and a push after changing 10 files. Prints a markdown table.
//
//   bun run scripts/bench/workspace.ts [--runs 3] [--only local,openviking]
//
// Each run uses a fresh workspace: first push (everything new), pull into empty directories,
// unchanged push, push after 10 changes. Figures are medians over the runs (min–max after).
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { openDatabase } from '../../src/db/open.ts'
import { createLogger } from '../../src/log.ts'
import { createLocalStore } from '../../src/workspace/local.ts'
import { createWorkspaceLock } from '../../src/workspace/lock.ts'
import { createOpenVikingStore } from '../../src/workspace/openviking.ts'
import type { WorkspaceStore } from '../../src/workspace/store.ts'
import { createWorkspaceSync, type SyncDirs } from '../../src/workspace/sync.ts'
import { createFakeOpenViking, type FakeOpenViking } from '../../test/fakes/openviking.ts'
import { backgroundBusy, machineBusy } from './machine.ts'
import { markdownTable, median } from './stats.ts'

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    only: { type: 'string', default: 'local,openviking' },
  },
})
const runs = Number(args.runs)
if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error('--runs: expected 1..50')
const only = new Set(args.only.split(','))

const MiB = 1024 * 1024
const FILES = 1000
const TOTAL_BYTES = 50 * MiB
/** The big files: two above OpenViking's 8 MiB batch-write limit, so they go in parts. */
const BIG_SIZES = [2, 3, 4, 6, 9, 12].map((n) => n * MiB)
const CHANGED = 10

function randomBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size)
  for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, at + 65536))
  return bytes
}

/** 994 small files (sizes spread around 5 KiB) and 6 big ones: 1,000 files, 50 MiB in all. */
function workspaceFiles(): { config: Map<string, Uint8Array>; project: Map<string, Uint8Array> } {
  const small = FILES - BIG_SIZES.length
  const smallBytes = TOTAL_BYTES - BIG_SIZES.reduce((a, b) => a + b, 0)
  const sizes = Array.from({ length: small }, (_, i) => 64 + ((i * 7919) % 9000))
  const scale = smallBytes / sizes.reduce((a, b) => a + b, 0)
  const scaled = sizes.map((s) => Math.floor(s * scale))
  scaled[0]! += smallBytes - scaled.reduce((a, b) => a + b, 0)
  const config = new Map<string, Uint8Array>()
  const project = new Map<string, Uint8Array>()
  scaled.forEach((size, i) => {
    // A third in the config tree (transcripts, todos, tasks), the rest in a nested project.
    if (i % 3 === 0) config.set(`projects/-run-s${i % 7}-project/${i}.jsonl`, randomBytes(size))
    else if (i % 3 === 1) project.set(`src/m${i % 11}/p${i % 5}/f${i}.bin`, randomBytes(size))
    else project.set(`assets/${i % 13}/a${i}.dat`, randomBytes(size))
  })
  BIG_SIZES.forEach((size, i) =>
    (i % 2 === 0 ? project : config).set(`big/blob-${i}.bin`, randomBytes(size)),
  )
  return { config, project }
}

async function writeTree(dir: string, files: Map<string, Uint8Array>) {
  for (const [path, bytes] of files) {
    await mkdir(dirname(join(dir, path)), { recursive: true })
    await writeFile(join(dir, path), bytes)
  }
}

/** Delegates to `store`, counting the calls that write or delete. */
function counting(store: WorkspaceStore) {
  const counts = { writes: 0 }
  const wrapped: WorkspaceStore = {
    name: store.name,
    describe: () => store.describe(),
    list: (ws, prefix) => store.list(ws, prefix),
    read: (ws, path) => store.read(ws, path),
    write: (ws, path, bytes) => (counts.writes++, store.write(ws, path, bytes)),
    writeMany: (ws, files) => (counts.writes++, store.writeMany(ws, files)),
    remove: (ws, paths) => (counts.writes++, store.remove(ws, paths)),
  }
  return { store: wrapped, counts }
}

interface Sample {
  op: string
  ms: number
  files: number
  bytes: number
  storeWrites: number
  /** HTTP requests that write or delete (OpenViking only). */
  writeRequests: number | null
}

const isWriteRequest = (r: { method: string; path: string }) =>
  r.method === 'DELETE' || (r.method === 'POST' && r.path !== '/api/v1/fs/tree')

async function benchStore(kind: 'local' | 'openviking', base: string): Promise<Sample[]> {
  const log = createLogger('silent')
  let fake: FakeOpenViking | null = null
  const inner =
    kind === 'local'
      ? createLocalStore({ root: join(base, 'store') })
      : ((fake = createFakeOpenViking({ apiKey: 'bench' })),
        createOpenVikingStore({ url: fake.url, apiKey: 'bench' }))
  const database = await openDatabase({ databaseUrl: null, dataDir: join(base, 'db'), log })
  const { store, counts } = counting(inner)
  const sync = createWorkspaceSync({
    store,
    lock: createWorkspaceLock(database),
    spoolDir: join(base, 'spool'),
    log,
    secrets: () => ['sk-ant-bench-secret-never-present'],
  })
  const samples: Sample[] = []
  const measure = async <T>(op: string, fn: () => Promise<T>, size: (r: T) => [number, number]) => {
    const writes = counts.writes
    const requests = fake?.requests.filter(isWriteRequest).length ?? 0
    const started = performance.now()
    const result = await fn()
    const elapsed = performance.now() - started
    const [files, bytes] = size(result)
    samples.push({
      op,
      ms: elapsed,
      files,
      bytes,
      storeWrites: counts.writes - writes,
      writeRequests: fake ? fake.requests.filter(isWriteRequest).length - requests : null,
    })
    return result
  }
  const dirsOf = async (name: string): Promise<SyncDirs> => {
    const dirs = { configDir: join(base, name, 'config'), projectDir: join(base, name, 'project') }
    await rm(join(base, name), { recursive: true, force: true })
    await Promise.all([
      mkdir(dirs.configDir, { recursive: true }),
      mkdir(dirs.projectDir, { recursive: true }),
    ])
    return dirs
  }
  try {
    for (let run = 0; run < runs; run++) {
      const ws = `bench-${run}`
      const tree = workspaceFiles()
      const first = await dirsOf('first')
      const empty = await sync.pull(ws, first)
      await writeTree(first.configDir, tree.config)
      await writeTree(first.projectDir, tree.project)
      const pushed = (r: { written: number; deleted: number; bytes: number }): [number, number] => [
        r.written + r.deleted,
        r.bytes,
      ]
      await measure('push, all 1,000 files new', () => sync.push(ws, first, empty.before), pushed)
      const turn = await dirsOf('turn')
      const pulled = await measure(
        'pull into empty dirs',
        () => sync.pull(ws, turn),
        (r) => [r.files, r.bytes],
      )
      await measure('push, unchanged', () => sync.push(ws, turn, pulled.before), pushed)
      // 10 changes: 8 small files rewritten, 1 big one rewritten, 1 small one deleted.
      const smallPaths = [...tree.project.keys()].filter((p) => !p.startsWith('big/'))
      for (const path of smallPaths.slice(0, 8))
        await writeFile(join(turn.projectDir, path), randomBytes(4096))
      await writeFile(join(turn.projectDir, 'big/blob-0.bin'), randomBytes(BIG_SIZES[0]!))
      await rm(join(turn.projectDir, smallPaths[8]!))
      await measure(
        `push, ${CHANGED} files changed`,
        () => sync.push(ws, turn, pulled.before),
        pushed,
      )
    }
  } finally {
    await database.close()
    await fake?.stop()
  }
  return samples
}

const base = join(tmpdir(), `ccb-bench-ws-${process.pid}`)
const busyBefore = await backgroundBusy()
const busy = machineBusy()
const rows: string[][] = []
try {
  for (const kind of ['local', 'openviking'] as const) {
    if (!only.has(kind)) continue
    const samples = await benchStore(kind, join(base, kind))
    for (const op of [...new Set(samples.map((s) => s.op))]) {
      const of = samples.filter((s) => s.op === op)
      const times = of.map((s) => s.ms)
      const last = of.at(-1)!
      rows.push([
        kind === 'local' ? 'local' : 'openviking (fake)',
        op,
        last.files.toLocaleString('en-US'),
        (last.bytes / MiB).toFixed(2),
        String(last.storeWrites),
        last.writeRequests === null ? '–' : String(last.writeRequests),
        `${Math.round(median(times))} ms`,
        `${Math.round(Math.min(...times))}–${Math.round(Math.max(...times))} ms`,
      ])
    }
  }
} finally {
  await rm(base, { recursive: true, force: true })
}
const cpu = cpus()[0]?.model ?? 'unknown CPU'
console.log(
  `workspace sync, ${FILES} files / ${TOTAL_BYTES / MiB} MiB, ${runs} run(s); ` +
    `${availableParallelism()} × ${cpu}; Bun ${Bun.version}; machine busy ${busyBefore ?? '?'}% before, ` +
    `${busy() ?? '?'}% during\n`,
)
console.log(
  markdownTable(
    ['store', 'operation', 'files', 'MiB', 'store writes', 'write requests', 'median', 'range'],
    rows,
  ),
)
