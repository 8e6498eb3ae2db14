import { describe, expect, test } from 'bun:test'
import { lstat, mkdir, readdir, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { createLocalStore } from '../../src/workspace/local.ts'
import { createOpenVikingStore } from '../../src/workspace/openviking.ts'
import type { StoreEntry, StoreFile, WorkspaceStore } from '../../src/workspace/store.ts'
import { createFakeOpenViking } from '../fakes/openviking.ts'
import { tempDir } from '../helpers/temp-dir.ts'

interface OpenStore {
  store: WorkspaceStore
  [Symbol.asyncDispose](): Promise<void>
}

async function openLocal(): Promise<OpenStore> {
  const dir = await tempDir()
  return {
    store: createLocalStore({ root: dir.path }),
    [Symbol.asyncDispose]: () => dir[Symbol.asyncDispose](),
  }
}

async function openOpenViking(): Promise<OpenStore> {
  const fake = createFakeOpenViking({ apiKey: 'test-key' })
  const retry = { attempts: 3, baseDelayMs: 0 }
  const store = createOpenVikingStore({ url: fake.url, apiKey: 'test-key', retry })
  return { store, [Symbol.asyncDispose]: fake.stop }
}

const MiB = 1024 * 1024
const text = (s: string) => new TextEncoder().encode(s)
const byPath = (a: { path: string }, b: { path: string }) =>
  a.path < b.path ? -1 : a.path > b.path ? 1 : 0
const entriesOf = (files: StoreFile[]): StoreEntry[] =>
  files.map((f) => ({ path: f.path, size: f.bytes.length })).sort(byPath)
const readAll = (store: WorkspaceStore, id: string, files: StoreFile[]) =>
  Promise.all(files.map(async (f) => ({ path: f.path, bytes: await store.read(id, f.path) })))
const failure = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (err: Error) => ({ name: err.name, message: err.message }),
  )

function randomBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size)
  for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, at + 65536))
  return bytes
}

/** Writes `files`, then checks the listing and every file's bytes as whole values. */
async function roundTrip(store: WorkspaceStore, id: string, files: StoreFile[]) {
  await store.writeMany(id, files)
  expect(await store.list(id)).toEqual(entriesOf(files))
  expect(await readAll(store, id, files)).toEqual(files)
}

// The tests that move megabytes or a thousand files run one at a time, so that they do not
// starve each other under the default 5 s test timeout.
describe.each([
  ['local', openLocal],
  ['openviking', openOpenViking],
] as const)('%s store', (_name, open) => {
  test.concurrent('binary content with all 256 byte values round-trips byte for byte', async () => {
    await using env = await open()
    const bytes = Uint8Array.from({ length: 512 }, (_, i) => (i * 7) % 256)
    await env.store.write('ws', 'bin/all-bytes.bin', bytes)
    expect(await env.store.read('ws', 'bin/all-bytes.bin')).toEqual(bytes)
    expect(await env.store.list('ws')).toEqual([{ path: 'bin/all-bytes.bin', size: 512 }])
  })

  test.concurrent('an empty file round-trips and lists with size 0', async () => {
    await using env = await open()
    await roundTrip(env.store, 'ws', [
      { path: 'empty', bytes: new Uint8Array() },
      { path: 'dir/also-empty.txt', bytes: new Uint8Array() },
    ])
  })

  test.concurrent('a tree of depth 10 lists every file, the deepest included', async () => {
    await using env = await open()
    const files = Array.from({ length: 10 }, (_, i) => {
      const dirs = Array.from({ length: i + 1 }, (_, d) => `level-${d + 1}`)
      return { path: `${dirs.join('/')}/file-${i + 1}.txt`, bytes: text(`depth ${i + 1}`) }
    })
    await roundTrip(env.store, 'ws', files)
  })

  test.concurrent('hidden files and hidden directories are listed and read back', async () => {
    await using env = await open()
    await roundTrip(env.store, 'ws', [
      { path: '.claude.json', bytes: text('{"a":1}') },
      { path: '.credentials.json', bytes: text('{}') },
      { path: '.config/settings', bytes: text('x') },
      { path: 'projects/.hidden/.inner', bytes: text('y') },
      { path: 'visible.txt', bytes: text('z') },
    ])
  })

  test.concurrent('a tasks directory at any depth is listed and read back', async () => {
    await using env = await open()
    await roundTrip(env.store, 'ws', [
      { path: 'tasks/s1/1.json', bytes: text('{"n":1}') },
      { path: 'tasks/s1/2.json', bytes: text('{"n":2}') },
      { path: 'projects/p/tasks/t.json', bytes: text('{"t":true}') },
      { path: 'tasks.json', bytes: text('[]') },
    ])
  })

  test.concurrent('unicode names and URL metacharacters round-trip', async () => {
    await using env = await open()
    await roundTrip(env.store, 'ws', [
      { path: '日本語/ファイル.txt', bytes: text('にほん') },
      { path: 'emoji 🙂.md', bytes: text('smile') },
      { path: 'naïve café/crème brûlée.txt', bytes: text('dessert') },
      { path: 'Ωmega/ß', bytes: text('greek') },
      { path: 'a&b=c+d e.txt', bytes: text('query') },
      { path: 'percent%20%2F.txt', bytes: text('percent') },
    ])
  })

  test.concurrent('names OpenViking cannot hold as they are round-trip', async () => {
    await using env = await open()
    await roundTrip(env.store, 'ws', [
      { path: 'what?.txt', bytes: text('q') },
      { path: 'hash#tag.md', bytes: text('h') },
      { path: '{calendar:today}.md', bytes: text('v') },
      { path: 'C:', bytes: text('drive') },
      { path: 'colon:name/C:x', bytes: text('colon') },
      { path: 'tilde~7E.txt', bytes: text('tilde') },
      { path: 'markers/~L/~F', bytes: text('markers') },
      { path: 'tab\tand\nnewline', bytes: text('ctrl') },
      { path: 'x'.repeat(250), bytes: text('long ascii') },
      { path: `${'é'.repeat(120)}/inner.txt`, bytes: text('long directory') },
      { path: '.abstract.md', bytes: text('mine, not a sidecar') },
      { path: 'sub/.overview.md', bytes: text('mine too') },
      { path: '.relations.json', bytes: text('[1]') },
      { path: '.summary_cache.json', bytes: text('{}') },
      { path: '_system/x', bytes: text('s') },
      { path: '.path.ovlock', bytes: text('l') },
      { path: '.ccbroker-manifest.json', bytes: text('user file') },
      { path: 'big.bin.ccbroker-parts/parts.json', bytes: text('user file') },
    ])
  })

  test('1,000 small files are written in one call, listed and read back', async () => {
    await using env = await open()
    const files = Array.from({ length: 1000 }, (_, i) => ({
      path: `many/dir-${i % 10}/file-${String(i).padStart(4, '0')}.txt`,
      bytes: text(`content of file ${i}\n`),
    }))
    await roundTrip(env.store, 'ws', files)
  })

  test('a 20 MiB file round-trips', async () => {
    await using env = await open()
    const bytes = randomBytes(20 * MiB)
    await env.store.write('ws', 'big/blob.bin', bytes)
    expect(await env.store.list('ws')).toEqual([{ path: 'big/blob.bin', size: 20 * MiB }])
    expect(await env.store.read('ws', 'big/blob.bin')).toEqual(bytes)
  })

  test('rewriting replaces the content, also across the 8 MiB mark', async () => {
    await using env = await open()
    const versions = [text('v1'), randomBytes(9 * MiB), randomBytes(12 * MiB), text('v4 small')]
    for (const bytes of versions) {
      await env.store.write('ws', 'f.bin', bytes)
      expect(await env.store.list('ws')).toEqual([{ path: 'f.bin', size: bytes.length }])
      expect(await env.store.read('ws', 'f.bin')).toEqual(bytes)
    }
  })

  test.concurrent('writeMany with a path given twice keeps the last bytes', async () => {
    await using env = await open()
    await env.store.writeMany('ws', [
      { path: 'a.txt', bytes: text('first') },
      { path: 'a.txt', bytes: text('second!') },
    ])
    expect(await env.store.list('ws')).toEqual([{ path: 'a.txt', size: 7 }])
    expect(await env.store.read('ws', 'a.txt')).toEqual(text('second!'))
  })

  test('removed files are gone from the listing and from reads', async () => {
    await using env = await open()
    const big = randomBytes(9 * MiB)
    await env.store.writeMany('ws', [
      { path: 'a/1.txt', bytes: text('1') },
      { path: 'a/2.txt', bytes: text('2') },
      { path: 'b/3.txt', bytes: text('3') },
      { path: 'tasks/t.json', bytes: text('{}') },
      { path: 'big.bin', bytes: big },
    ])
    await env.store.remove('ws', ['a/1.txt', 'tasks/t.json', 'big.bin', 'missing/x'])
    expect(await env.store.list('ws')).toEqual([
      { path: 'a/2.txt', size: 1 },
      { path: 'b/3.txt', size: 1 },
    ])
    expect(await failure(env.store.read('ws', 'a/1.txt'))).toEqual({
      name: 'NotFoundError',
      message: 'file "a/1.txt" not found in workspace ws',
    })
    expect(await failure(env.store.read('ws', 'big.bin'))).toEqual({
      name: 'NotFoundError',
      message: 'file "big.bin" not found in workspace ws',
    })
    await env.store.remove('ws', ['a/1.txt', 'a/2.txt', 'b/3.txt'])
    expect(await env.store.list('ws')).toEqual([])
  })

  test.concurrent('removing a directory path is refused and keeps its files', async () => {
    await using env = await open()
    await env.store.write('ws', 'd/x.txt', text('x'))
    expect(await failure(env.store.remove('ws', ['d']))).toEqual({
      name: 'BadRequestError',
      message: '"d" in workspace ws is a directory; remove the files inside it',
    })
    expect(await env.store.list('ws')).toEqual([{ path: 'd/x.txt', size: 1 }])
  })

  test.concurrent('list with a prefix returns only the files below that directory', async () => {
    await using env = await open()
    await env.store.writeMany('ws', [
      { path: 'a/x', bytes: text('1') },
      { path: 'a/y/z', bytes: text('22') },
      { path: 'ab/c', bytes: text('333') },
      { path: 'a.txt', bytes: text('4444') },
      { path: 'tasks/a/b', bytes: text('55555') },
    ])
    const expected = [
      { path: 'a/x', size: 1 },
      { path: 'a/y/z', size: 2 },
    ]
    expect(await env.store.list('ws', 'a')).toEqual(expected)
    expect(await env.store.list('ws', 'a/')).toEqual(expected)
    expect(await env.store.list('ws', 'a/y')).toEqual([{ path: 'a/y/z', size: 2 }])
    expect(await env.store.list('ws', 'tasks')).toEqual([{ path: 'tasks/a/b', size: 5 }])
    expect(await env.store.list('ws', 'nope')).toEqual([])
  })

  test.concurrent('workspaces are separate; an unknown one lists empty', async () => {
    await using env = await open()
    await env.store.write('ws-1', 'x.txt', text('one'))
    await env.store.write('ws.2_B', 'y.txt', text('two'))
    expect(await env.store.list('ws-1')).toEqual([{ path: 'x.txt', size: 3 }])
    expect(await env.store.list('ws.2_B')).toEqual([{ path: 'y.txt', size: 3 }])
    expect(await env.store.list('never-written')).toEqual([])
    expect(await failure(env.store.read('never-written', 'x.txt'))).toEqual({
      name: 'NotFoundError',
      message: 'file "x.txt" not found in workspace never-written',
    })
    await env.store.remove('never-written', ['x.txt'])
  })

  test.concurrent('malformed paths and workspace ids are refused; nothing is stored', async () => {
    await using env = await open()
    const b = text('x')
    const cases: [Promise<unknown>, string, string][] = [
      [
        env.store.write('ws', '../x', b),
        'PathEscapeError',
        'path "../x" contains ".."; give a path inside the workspace',
      ],
      [
        env.store.write('ws', 'a/../../x', b),
        'PathEscapeError',
        'path "a/../../x" contains ".."; give a path inside the workspace',
      ],
      [
        env.store.write('ws', '/etc/passwd', b),
        'PathEscapeError',
        'path "/etc/passwd" is absolute; give a path relative to the workspace',
      ],
      [
        env.store.write('ws', 'a//b', b),
        'BadRequestError',
        'path "a//b" has an empty segment; remove the extra "/"',
      ],
      [
        env.store.write('ws', 'a/', b),
        'BadRequestError',
        'path "a/" has an empty segment; remove the extra "/"',
      ],
      [
        env.store.write('ws', './a', b),
        'BadRequestError',
        'path "./a" has a "." segment; write the path without it',
      ],
      [env.store.write('ws', '', b), 'BadRequestError', 'path is empty'],
      [env.store.write('ws', 'a\0b', b), 'BadRequestError', 'path "a\\u0000b" contains a NUL byte'],
      [
        env.store.writeMany('ws', [
          { path: 'ok', bytes: b },
          { path: '../bad', bytes: b },
        ]),
        'PathEscapeError',
        'path "../bad" contains ".."; give a path inside the workspace',
      ],
      [
        env.store.read('ws', '../x'),
        'PathEscapeError',
        'path "../x" contains ".."; give a path inside the workspace',
      ],
      [
        env.store.remove('ws', ['ok', '/x']),
        'PathEscapeError',
        'path "/x" is absolute; give a path relative to the workspace',
      ],
      [
        env.store.list('ws', '../'),
        'PathEscapeError',
        'path ".." contains ".."; give a path inside the workspace',
      ],
      [
        env.store.write('..', 'x', b),
        'BadRequestError',
        'workspace id ".." is invalid; use 1-128 characters of A-Z a-z 0-9 . _ - (not "." or "..")',
      ],
      [
        env.store.write('a/b', 'x', b),
        'BadRequestError',
        'workspace id "a/b" is invalid; use 1-128 characters of A-Z a-z 0-9 . _ - (not "." or "..")',
      ],
      [
        env.store.list(''),
        'BadRequestError',
        'workspace id "" is invalid; use 1-128 characters of A-Z a-z 0-9 . _ - (not "." or "..")',
      ],
    ]
    const got = await Promise.all(cases.map(([p]) => failure(p)))
    expect(got).toEqual(cases.map(([, name, message]) => ({ name, message })))
    expect(await env.store.list('ws')).toEqual([])
  })
})

describe('local store', () => {
  test.concurrent(
    'removing the last file of a directory removes the now-empty directories',
    async () => {
      await using dir = await tempDir()
      const store = createLocalStore({ root: dir.path })
      await store.writeMany('ws', [
        { path: 'a/b/c/only.txt', bytes: text('1') },
        { path: 'a/keep.txt', bytes: text('2') },
      ])
      await store.remove('ws', ['a/b/c/only.txt'])
      expect(await readdir(join(dir.path, 'ws', 'a'))).toEqual(['keep.txt'])
      await store.remove('ws', ['a/keep.txt'])
      expect(await readdir(join(dir.path, 'ws'))).toEqual([])
    },
  )

  test.concurrent('files land under <root>/<id>/ and no temp file stays behind', async () => {
    await using dir = await tempDir()
    const store = createLocalStore({ root: dir.path })
    await store.writeMany('ws', [
      { path: 'x/y.txt', bytes: text('y') },
      { path: '.hidden', bytes: text('h') },
    ])
    expect(await Bun.file(join(dir.path, 'ws', 'x', 'y.txt')).text()).toBe('y')
    expect((await readdir(dir.path)).sort()).toEqual(['.ccbroker-tmp', 'ws'])
    expect(await readdir(join(dir.path, '.ccbroker-tmp'))).toEqual([])
  })

  test.concurrent(
    'a backslash or a reserved workspace id is refused with a clear error',
    async () => {
      await using dir = await tempDir()
      const store = createLocalStore({ root: dir.path })
      expect(await failure(store.write('ws', 'back\\slash', text('x')))).toEqual({
        name: 'BadRequestError',
        message:
          'path "back\\slash" contains a backslash, which the local store cannot keep in workspace ws; rename the file',
      })
      expect(await failure(store.write('ws', '~/x', text('x')))).toEqual({
        name: 'BadRequestError',
        message:
          'path "~/x" starts with "~", which the local store cannot keep in workspace ws; rename the file',
      })
      expect(await failure(store.write('.ccbroker-tmp', 'x', text('x')))).toEqual({
        name: 'BadRequestError',
        message: 'workspace id ".ccbroker-tmp" is reserved by the local store',
      })
      expect(await readdir(dir.path)).toEqual([])
    },
  )

  test.concurrent(
    'symlinks are not listed, and reading through one that leaves is refused',
    async () => {
      await using dir = await tempDir()
      await using outside = await tempDir()
      await Bun.write(join(outside.path, 'secret'), 'secret')
      const store = createLocalStore({ root: dir.path })
      await store.write('ws', 'real.txt', text('real'))
      await symlink(outside.path, join(dir.path, 'ws', 'escape'))
      await symlink(join(dir.path, 'ws', 'real.txt'), join(dir.path, 'ws', 'alias.txt'))
      expect(await store.list('ws')).toEqual([{ path: 'real.txt', size: 4 }])
      expect(await failure(store.read('ws', 'escape/secret'))).toEqual({
        name: 'PathEscapeError',
        message: 'path "escape/secret" goes through a symlink that leaves the workspace',
      })
      expect(await failure(store.write('ws', 'escape/new', text('x')))).toEqual({
        name: 'PathEscapeError',
        message: 'path "escape/new" goes through a symlink that leaves the workspace',
      })
      expect(await readdir(outside.path)).toEqual(['secret'])
      await mkdir(join(dir.path, 'ws', 'emptydir'))
      expect((await lstat(join(dir.path, 'ws', 'emptydir'))).isDirectory()).toBe(true)
      expect(await store.list('ws')).toEqual([{ path: 'real.txt', size: 4 }])
    },
  )
})
