import { describe, expect, test } from 'bun:test'
import { createLogger } from '../../src/log.ts'
import type { OpenVikingStoreOptions } from '../../src/workspace/openviking.ts'
import { createOpenVikingStore } from '../../src/workspace/openviking.ts'
import type { FakeOpenViking } from '../fakes/openviking.ts'
import { createFakeOpenViking } from '../fakes/openviking.ts'

const MiB = 1024 * 1024
const key = 'key-1'
const root = 'viking://resources/workspace_ws'
const text = (s: string) => new TextEncoder().encode(s)
const fastRetry = { attempts: 3, baseDelayMs: 0 }
const batchPath = '/api/v1/content/batch-write'
const downloadPath = '/api/v1/content/download'

const storeFor = (fake: FakeOpenViking, options: Partial<OpenVikingStoreOptions> = {}) =>
  createOpenVikingStore({ url: fake.url, apiKey: key, retry: fastRetry, ...options })

const failure = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (err: Error) => ({ name: err.name, message: err.message }),
  )

/** Stored names below `prefix` (relative), sidecars left out, sorted. */
const storedNames = (fake: FakeOpenViking, prefix = `${root}/`) =>
  [...fake.files.keys()]
    .filter(
      (uri) =>
        uri.startsWith(prefix) && !/\/\.(abstract|overview)\.md$|\/\.relations\.json$/.test(uri),
    )
    .map((uri) => uri.slice(prefix.length))
    .sort()

/** Per batch-write request: operation count and decoded bytes. */
const batches = (fake: FakeOpenViking) =>
  fake.requests
    .filter((r) => r.path === batchPath)
    .map((r) => {
      const ops = (r.body as { operations: { content_base64: string }[] }).operations
      const bytes = ops.reduce((n, op) => n + Buffer.from(op.content_base64, 'base64').length, 0)
      return { ops: ops.length, bytes }
    })

interface Envelope {
  status: string
  result?: unknown
  error?: { code: string; message: string; details: unknown } | null
}

async function call(
  fake: FakeOpenViking,
  method: string,
  path: string,
  {
    query,
    body,
    apiKey = key,
  }: { query?: Record<string, string>; body?: unknown; apiKey?: string } = {},
) {
  const search = query ? `?${new URLSearchParams(query)}` : ''
  const res = await fetch(`${fake.url}${path}${search}`, {
    method,
    headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: res.status, body: (await res.json()) as Envelope }
}

function randomBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size)
  for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, at + 65536))
  return bytes
}

describe('OpenViking store', () => {
  test.concurrent('every request carries the API key as X-API-Key', async () => {
    await using fake = createFakeOpenViking({ apiKey: key })
    const store = storeFor(fake)
    await store.write('ws', 'a.txt', text('a'))
    await store.list('ws')
    await store.read('ws', 'a.txt')
    await store.remove('ws', ['a.txt'])
    expect([...new Set(fake.requests.map((r) => r.apiKey))]).toEqual([key])
    expect([...new Set(fake.requests.map((r) => `${r.method} ${r.path}`))].sort()).toEqual([
      'DELETE /api/v1/fs',
      `GET ${downloadPath}`,
      'GET /api/v1/fs/tree',
      `POST ${batchPath}`,
      'POST /api/v1/fs/mkdir',
    ])
  })

  test.concurrent(
    'a wrong API key fails at once, naming store, operation, path and code',
    async () => {
      await using fake = createFakeOpenViking({ apiKey: key })
      const store = storeFor(fake, { apiKey: 'wrong' })
      expect(await failure(store.write('ws', 'notes.md', text('x')))).toEqual({
        name: 'UpstreamError',
        message: `openviking at ${fake.url}: mkdir "notes.md" in workspace ws failed: HTTP 401 UNAUTHENTICATED: Invalid API Key`,
      })
      expect(fake.requests.length).toBe(1)
    },
  )

  test.concurrent(
    'an error envelope surfaces OpenViking code and message; a 400 is not retried',
    async () => {
      await using fake = createFakeOpenViking({ apiKey: key })
      const store = storeFor(fake)
      fake.failNext(1, { status: 400, code: 'INVALID_ARGUMENT', path: batchPath })
      // A request the server refuses as such is reported, not retried or spooled.
      expect(await failure(store.write('ws', 'b.txt', text('b')))).toEqual({
        name: 'StoreRefusedError',
        message: `openviking at ${fake.url}: batch-write "b.txt" in workspace ws failed: HTTP 400 INVALID_ARGUMENT: injected INVALID_ARGUMENT`,
      })
      expect(batches(fake).length).toBe(1)
      expect(await store.list('ws')).toEqual([])
    },
  )

  test.concurrent(
    '409 path_busy is retried until the write lands; a plain 409 CONFLICT is not',
    async () => {
      await using fake = createFakeOpenViking({ apiKey: key })
      const store = storeFor(fake)
      fake.failNext(2, {
        status: 409,
        code: 'CONFLICT',
        conflictType: 'path_busy',
        path: batchPath,
      })
      await store.write('ws', 'a.txt', text('landed'))
      expect(await store.read('ws', 'a.txt')).toEqual(text('landed'))
      expect(batches(fake).map((b) => b.ops)).toEqual([1, 1, 1, 1])
      fake.failNext(1, { status: 409, code: 'CONFLICT', path: batchPath })
      expect(await failure(store.write('ws', 'b.txt', text('b')))).toEqual({
        name: 'StoreRefusedError',
        message: `openviking at ${fake.url}: batch-write "b.txt" in workspace ws failed: HTTP 409 CONFLICT: injected CONFLICT`,
      })
      expect(batches(fake).length).toBe(5)
    },
  )

  test.concurrent(
    '429 and 5xx are retried; past the attempts the error names the tries',
    async () => {
      await using fake = createFakeOpenViking({ apiKey: key })
      const store = storeFor(fake)
      await store.write('ws', 'a.txt', text('a'))
      fake.failNext(1, { status: 429, code: 'RESOURCE_EXHAUSTED', path: downloadPath })
      fake.failNext(1, { status: 502, code: 'HTTP_502', path: downloadPath })
      expect(await store.read('ws', 'a.txt')).toEqual(text('a'))
      fake.failNext(3, { status: 500, code: 'INTERNAL', path: downloadPath })
      expect(await failure(store.read('ws', 'a.txt'))).toEqual({
        name: 'UpstreamError',
        message: `openviking at ${fake.url}: read "a.txt" in workspace ws failed: HTTP 500 INTERNAL: injected INTERNAL (after 3 attempts)`,
      })
    },
  )

  test.concurrent('an unreachable server fails as UpstreamError after the attempts', async () => {
    const fake = createFakeOpenViking()
    await fake.stop()
    const store = createOpenVikingStore({ url: fake.url, retry: { attempts: 2, baseDelayMs: 0 } })
    const got = await failure(store.write('ws', 'a.txt', text('a')))
    expect(got?.name).toBe('UpstreamError')
    expect(got?.message).toStartWith(
      `openviking at ${fake.url}: mkdir "a.txt" in workspace ws failed: NETWORK: `,
    )
    expect(got?.message).toEndWith(' (after 2 attempts)')
  })

  test.concurrent(
    'sidecars OpenViking writes are never listed (nor logged as foreign)',
    async () => {
      await using fake = createFakeOpenViking({ apiKey: key })
      const logged: string[] = []
      const store = storeFor(fake, { log: createLogger('debug', {}, (line) => logged.push(line)) })
      await store.writeMany('ws', [
        { path: 'docs/a.md', bytes: text('a') },
        { path: 'docs/sub/b.md', bytes: text('bb') },
      ])
      expect([...fake.files.keys()].filter((k) => k.startsWith(root)).sort()).toEqual([
        `${root}/.abstract.md`,
        `${root}/.ccbroker-manifest.json`,
        `${root}/.overview.md`,
        `${root}/.relations.json`,
        `${root}/docs/.abstract.md`,
        `${root}/docs/.overview.md`,
        `${root}/docs/a.md`,
        `${root}/docs/sub/.abstract.md`,
        `${root}/docs/sub/.overview.md`,
        `${root}/docs/sub/b.md`,
      ])
      expect(await store.list('ws')).toEqual([
        { path: 'docs/a.md', size: 1 },
        { path: 'docs/sub/b.md', size: 2 },
      ])
      expect(logged).toEqual([])
    },
  )

  test.concurrent(
    'tasks stays invisible to fs/tree; the store lists it from its manifest',
    async () => {
      await using fake = createFakeOpenViking({ apiKey: key })
      const store = storeFor(fake)
      const task = text('{"id":1}')
      await store.writeMany('ws', [
        { path: 'tasks/s/1.json', bytes: task },
        { path: 'top.txt', bytes: text('top') },
      ])
      const query = { uri: root, output: 'original', show_all_hidden: 'true', level_limit: '64' }
      const tree = await call(fake, 'GET', '/api/v1/fs/tree', { query })
      const files = (tree.body.result as { rel_path: string; isDir: boolean }[]).filter(
        (e) => !e.isDir,
      )
      expect(files.map((e) => e.rel_path)).toEqual([
        '.abstract.md',
        '.ccbroker-manifest.json',
        '.overview.md',
        '.relations.json',
        'top.txt',
      ])
      const manifest = JSON.parse(
        new TextDecoder().decode(fake.files.get(`${root}/.ccbroker-manifest.json`)),
      )
      expect(manifest).toEqual({
        version: 1,
        files: {
          'tasks/s/1.json': {
            size: 8,
            sha256: new Bun.CryptoHasher('sha256').update(task).digest('hex'),
          },
          'top.txt': {
            size: 3,
            sha256: new Bun.CryptoHasher('sha256').update('top').digest('hex'),
          },
        },
      })
      expect(await store.list('ws')).toEqual([
        { path: 'tasks/s/1.json', size: 8 },
        { path: 'top.txt', size: 3 },
      ])
    },
  )

  test.concurrent(
    'files another client wrote into the workspace are listed and readable',
    async () => {
      await using fake = createFakeOpenViking({ apiKey: key })
      const logged: string[] = []
      const store = storeFor(fake, { log: createLogger('warn', {}, (line) => logged.push(line)) })
      await store.write('ws', 'mine.txt', text('mine'))
      const operations = [
        { uri: `${root}/other/note.txt`, content: 'theirs', mode: 'upsert' },
        // Not a name this store's encoding produces (a bare "~"): skipped and logged.
        { uri: `${root}/odd~name`, content: 'odd', mode: 'upsert' },
      ]
      const wrote = await call(fake, 'POST', batchPath, { body: { root_uri: root, operations } })
      expect(wrote.status).toBe(200)
      expect(await store.list('ws')).toEqual([
        { path: 'mine.txt', size: 4 },
        { path: 'other/note.txt', size: 6 },
      ])
      expect(await store.read('ws', 'other/note.txt')).toEqual(text('theirs'))
      const records = logged.map((line) => JSON.parse(line) as Record<string, unknown>)
      expect(records.map(({ time: _, ...rest }) => rest)).toEqual([
        {
          level: 'warn',
          msg: 'openviking store skips a name it did not write',
          id: 'ws',
          name: 'odd~name',
        },
      ])
    },
  )

  test.concurrent('unsafe names are stored under reversible encoded names', async () => {
    await using fake = createFakeOpenViking({ apiKey: key })
    const store = storeFor(fake)
    const long = 'y'.repeat(400)
    const paths = [
      'what?.txt',
      'hash#tag.md',
      'back\\slash',
      '{calendar:today}.md',
      'C:',
      '100%.txt',
      'tilde~',
      'line\nbreak',
      '.abstract.md',
      '_system/x',
      '.ccbroker-manifest.json',
      'a.ccbroker-parts/parts.json',
      'tasks/t',
      long,
      '🙂'.repeat(100),
    ]
    const files = paths.map((path, i) => ({ path, bytes: text(`file ${i}`) }))
    await store.writeMany('ws', files)
    expect(storedNames(fake)).toEqual([
      '.ccbroker-manifest.json',
      '100~25.txt',
      'C~3A',
      'a~2Eccbroker-parts/parts.json',
      'back~5Cslash',
      'hash~23tag.md',
      'line~0Abreak',
      'tasks/t',
      'tilde~7E',
      'what~3F.txt',
      '{calendar~3Atoday}.md',
      '~2Eabstract.md',
      '~2Eccbroker-manifest.json',
      '~5Fsystem/x',
      `~L${'y'.repeat(198)}/~L${'y'.repeat(198)}/~F${'y'.repeat(4)}`,
      // Pieces end on whole characters: 49 four-byte emoji fill 196 of the 198 bytes.
      `~L${'🙂'.repeat(49)}/~L${'🙂'.repeat(49)}/~F${'🙂'.repeat(2)}`,
    ])
    const sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : 1))
    expect(await store.list('ws')).toEqual(
      sorted.map((f) => ({ path: f.path, size: f.bytes.length })),
    )
    expect(await Promise.all(paths.map((p) => store.read('ws', p)))).toEqual(
      files.map((f) => f.bytes),
    )
  })

  test.concurrent('batch-write is chunked at 256 operations', async () => {
    await using fake = createFakeOpenViking({ apiKey: key })
    const store = storeFor(fake)
    const files = Array.from({ length: 600 }, (_, i) => ({
      path: `f/${i}.txt`,
      bytes: text(`${i}`),
    }))
    await store.writeMany('ws', files)
    expect(batches(fake).map((b) => b.ops)).toEqual([256, 256, 88, 1])
    expect((await store.list('ws')).length).toBe(600)
  })

  test('batch-write is chunked at 16 MiB per request', async () => {
    await using fake = createFakeOpenViking({ apiKey: key })
    const store = storeFor(fake)
    const files = Array.from({ length: 5 }, (_, i) => ({
      path: `f${i}.bin`,
      bytes: randomBytes(5 * MiB),
    }))
    await store.writeMany('ws', files)
    const manifestSize = fake.files.get(`${root}/.ccbroker-manifest.json`)?.length ?? -1
    expect(batches(fake)).toEqual([
      { ops: 3, bytes: 15 * MiB },
      { ops: 2, bytes: 10 * MiB },
      { ops: 1, bytes: manifestSize },
    ])
  })

  test('a 20 MiB file is stored as 4 MiB parts plus an index, and read back', async () => {
    await using fake = createFakeOpenViking({ apiKey: key })
    const store = storeFor(fake)
    const bytes = randomBytes(20 * MiB)
    await store.write('ws', 'big.bin', bytes)
    const dir = `${root}/big.bin.ccbroker-parts/`
    const index = fake.files.get(`${dir}parts.json`)
    expect(storedNames(fake)).toEqual([
      '.ccbroker-manifest.json',
      ...['parts.json', 'part-0', 'part-1', 'part-2', 'part-3', 'part-4']
        .map((n) => `big.bin.ccbroker-parts/${n}`)
        .sort(),
    ])
    expect([0, 1, 2, 3, 4].map((n) => fake.files.get(`${dir}part-${n}`)?.length)).toEqual(
      Array(5).fill(4 * MiB),
    )
    const manifestSize = fake.files.get(`${root}/.ccbroker-manifest.json`)?.length ?? -1
    // The index goes in a request of its own, after every part.
    expect(batches(fake)).toEqual([
      { ops: 4, bytes: 16 * MiB },
      { ops: 1, bytes: 4 * MiB },
      { ops: 1, bytes: index?.length ?? -1 },
      { ops: 1, bytes: manifestSize },
    ])
    expect(await store.read('ws', 'big.bin')).toEqual(bytes)
  })

  test.concurrent(
    'parts follow the size as a file shrinks, turns plain and grows again',
    async () => {
      await using fake = createFakeOpenViking({ apiKey: key })
      const limits = { maxFileBytes: 1000, partBytes: 400, maxRequestBytes: 2000 }
      const store = storeFor(fake, { limits })
      const parts = (n: number) => [
        ...Array.from({ length: n }, (_, i) => `f.bin.ccbroker-parts/part-${i}`),
        'f.bin.ccbroker-parts/parts.json',
      ]
      const steps: [number, string[]][] = [
        [2000, parts(5)],
        [1300, parts(4)],
        [900, ['f.bin']],
        [1001, parts(3)],
      ]
      for (const [size, stored] of steps) {
        const bytes = randomBytes(size)
        await store.write('ws', 'f.bin', bytes)
        expect(storedNames(fake)).toEqual(['.ccbroker-manifest.json', ...stored].sort())
        expect(await store.list('ws')).toEqual([{ path: 'f.bin', size }])
        expect(await store.read('ws', 'f.bin')).toEqual(bytes)
      }
      await store.remove('ws', ['f.bin'])
      expect(storedNames(fake)).toEqual(['.ccbroker-manifest.json'])
    },
  )

  test.concurrent('uri query parameters are URL-encoded', async () => {
    await using fake = createFakeOpenViking({ apiKey: key })
    const store = storeFor(fake)
    await store.write('ws', 'a b&c=d+e#f.txt', text('x'))
    expect(await store.read('ws', 'a b&c=d+e#f.txt')).toEqual(text('x'))
    expect(fake.requests.at(-1)?.url).toBe(
      `${downloadPath}?uri=viking%3A%2F%2Fresources%2Fworkspace_ws%2Fa%20b%26c%3Dd%2Be~23f.txt`,
    )
  })

  test.concurrent('rootUri and workspaceTemplate choose where a workspace lives', async () => {
    await using fake = createFakeOpenViking({ apiKey: key })
    const store = storeFor(fake, {
      rootUri: 'viking://user/u1/claude-homes',
      workspaceTemplate: 'home-{id}',
    })
    await store.write('ws', 'x.txt', text('x'))
    expect(storedNames(fake, 'viking://user/u1/claude-homes/')).toEqual([
      'home-ws/.ccbroker-manifest.json',
      'home-ws/x.txt',
    ])
    expect(await store.list('ws')).toEqual([{ path: 'x.txt', size: 1 }])
  })

  test.concurrent(
    'removing the last file of a directory removes the directory, so a file can take its name; a directory holding a foreign file stays',
    async () => {
      await using fake = createFakeOpenViking({ apiKey: key })
      const store = storeFor(fake)
      await store.writeMany('ws', [
        { path: 'lib/deep/a.js', bytes: text('a') },
        { path: 'keep/b.js', bytes: text('b') },
      ])
      // Written by someone else, straight into the workspace directory.
      fake.files.set(`${root}/keep/foreign.md`, text('not ours'))
      await store.remove('ws', ['lib/deep/a.js', 'keep/b.js'])
      expect([...fake.dirs].filter((d) => d.startsWith(`${root}/`)).sort()).toEqual([
        `${root}/keep`,
      ])
      await store.write('ws', 'lib', text('now a file'))
      expect(await store.list('ws')).toEqual([
        { path: 'keep/foreign.md', size: 8 },
        { path: 'lib', size: 10 },
      ])
    },
  )
})

describe('fake OpenViking', () => {
  test.concurrent(
    '401 without the key, 403 for "..", 404 envelope for a missing file',
    async () => {
      await using fake = createFakeOpenViking({ apiKey: key })
      const query = { uri: `${root}/missing` }
      expect(await call(fake, 'GET', downloadPath, { query, apiKey: 'nope' })).toEqual({
        status: 401,
        body: {
          status: 'error',
          error: { code: 'UNAUTHENTICATED', message: 'Invalid API Key', details: null },
        },
      })
      const escape = await call(fake, 'GET', downloadPath, {
        query: { uri: 'viking://resources/a/../b' },
      })
      expect(escape.status).toBe(403)
      expect(await call(fake, 'GET', downloadPath, { query })).toEqual({
        status: 404,
        body: {
          status: 'error',
          error: {
            code: 'NOT_FOUND',
            message: `File not found: ${root}/missing`,
            details: { type: 'file', resource: `${root}/missing` },
          },
        },
      })
    },
  )

  test.concurrent(
    'fs/tree drops hidden files unless asked, hides tasks at any depth, honours limits',
    async () => {
      await using fake = createFakeOpenViking()
      await call(fake, 'POST', '/api/v1/fs/mkdir', { body: { uri: root } })
      const operations = [
        '.h',
        'a/b/c.txt',
        'tasks/t.json',
        'a/tasks/u.json',
        'a/_system/v',
        '.d/e',
      ].map((p) => ({ uri: `${root}/${p}`, content: p, mode: 'upsert' }))
      expect(
        (await call(fake, 'POST', batchPath, { body: { root_uri: root, operations } })).status,
      ).toBe(200)
      const files = async (query: Record<string, string>) => {
        const res = await call(fake, 'GET', '/api/v1/fs/tree', {
          query: { uri: root, output: 'original', ...query },
        })
        return (res.body.result as { rel_path: string; isDir: boolean }[]).map(
          (e) => `${e.rel_path}${e.isDir ? '/' : ''}`,
        )
      }
      // Hidden directories are listed and walked; only hidden files need show_all_hidden.
      expect(await files({ level_limit: '9' })).toEqual(['.d/', '.d/e', 'a/', 'a/b/', 'a/b/c.txt'])
      expect(await files({ level_limit: '9', show_all_hidden: 'true' })).toEqual([
        '.abstract.md',
        '.d/',
        '.d/.abstract.md',
        '.d/.overview.md',
        '.d/e',
        '.h',
        '.overview.md',
        '.relations.json',
        'a/',
        'a/.abstract.md',
        'a/.overview.md',
        'a/b/',
        'a/b/.abstract.md',
        'a/b/.overview.md',
        'a/b/c.txt',
      ])
      expect(await files({ level_limit: '1' })).toEqual(['.d/', 'a/'])
      expect(await files({ level_limit: '9', node_limit: '3' })).toEqual(['.d/', '.d/e', 'a/'])
    },
  )

  test.concurrent(
    'batch-write enforces 256 ops, 8 MiB per file, 16 MiB per request, strict base64',
    async () => {
      await using fake = createFakeOpenViking()
      const write = async (operations: unknown[], rootUri = root) => {
        const res = await call(fake, 'POST', batchPath, { body: { root_uri: rootUri, operations } })
        return { status: res.status, code: res.body.error?.code ?? null }
      }
      const op = (name: string, bytes: number) => ({
        uri: `${root}/${name}`,
        content_base64: Buffer.alloc(bytes).toString('base64'),
        mode: 'upsert',
      })
      expect(await write([op('a', 1)])).toEqual({ status: 404, code: 'NOT_FOUND' })
      await call(fake, 'POST', '/api/v1/fs/mkdir', { body: { uri: root } })
      expect(await write(Array.from({ length: 257 }, (_, i) => op(`f${i}`, 1)))).toEqual({
        status: 429,
        code: 'RESOURCE_EXHAUSTED',
      })
      expect(await write([op('big', 8 * MiB + 1)])).toEqual({
        status: 429,
        code: 'RESOURCE_EXHAUSTED',
      })
      expect(await write([op('a', 6 * MiB), op('b', 6 * MiB), op('c', 5 * MiB)])).toEqual({
        status: 429,
        code: 'RESOURCE_EXHAUSTED',
      })
      expect(await write([{ uri: `${root}/x`, content_base64: 'AAA', mode: 'upsert' }])).toEqual({
        status: 400,
        code: 'INVALID_ARGUMENT',
      })
      expect(await write([{ uri: `${root}/x?`, content: 'x', mode: 'upsert' }])).toEqual({
        status: 400,
        code: 'INVALID_URI',
      })
      expect(await write([{ uri: `${root}/.abstract.md`, content: 'x', mode: 'upsert' }])).toEqual({
        status: 400,
        code: 'INVALID_ARGUMENT',
      })
      expect(await write([op('a', 8 * MiB), op('b', 8 * MiB)])).toEqual({ status: 200, code: null })
      expect([...fake.files.keys()].filter((k) => !k.includes('/.')).sort()).toEqual([
        `${root}/a`,
        `${root}/b`,
      ])
    },
  )

  test.concurrent(
    'mkdir of an existing directory is 409; DELETE is idempotent, 412 for a directory',
    async () => {
      await using fake = createFakeOpenViking()
      const mkdir = () => call(fake, 'POST', '/api/v1/fs/mkdir', { body: { uri: `${root}/d` } })
      expect((await mkdir()).status).toBe(200)
      expect((await mkdir()).status).toBe(409)
      const del = (uri: string, recursive?: string) =>
        call(fake, 'DELETE', '/api/v1/fs', { query: recursive ? { uri, recursive } : { uri } })
      expect((await del(`${root}/missing`)).status).toBe(200)
      expect((await del(`${root}/d`)).body.error?.code).toBe('FAILED_PRECONDITION')
      expect((await del(`${root}/d`, 'true')).status).toBe(200)
      expect(fake.dirs.has(`${root}/d`)).toBe(false)
    },
  )
})
