import { describe, expect, test } from 'bun:test'
import type { OpenVikingStoreOptions } from '../../src/workspace/openviking.ts'
import { createOpenVikingStore } from '../../src/workspace/openviking.ts'
import type { FakeOpenViking } from '../fakes/openviking.ts'
import { createFakeOpenViking } from '../fakes/openviking.ts'

const key = 'user-key'
const rootKey = 'root-key'
const root = 'viking://resources/workspace_ws'
const batchPath = '/api/v1/content/batch-write'
const text = (s: string) => new TextEncoder().encode(s)
const rootRefusal =
  'ROOT API keys cannot access tenant-scoped data APIs in api_key mode. Use a user/admin API ' +
  'key for data access, or trusted mode for upstream identity assertion.'

const storeFor = (fake: FakeOpenViking, options: Partial<OpenVikingStoreOptions> = {}) =>
  createOpenVikingStore({
    url: fake.url,
    apiKey: key,
    retry: { attempts: 3, baseDelayMs: 0 },
    ...options,
  })

const failure = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (err: Error) => ({ name: err.name, message: err.message }),
  )

/** Stored names below the workspace, sidecars left out, sorted. */
const storedNames = (fake: FakeOpenViking) =>
  [...fake.files.keys()]
    .filter((uri) => uri.startsWith(`${root}/`) && !/\/\.(abstract|overview|relations)\./.test(uri))
    .map((uri) => uri.slice(root.length + 1))
    .sort()

async function post(fake: FakeOpenViking, path: string, body: unknown, apiKey = key) {
  const res = await fetch(`${fake.url}${path}`, {
    method: 'POST',
    headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

describe('OpenViking store against server versions and keys', () => {
  test.concurrent(
    'against v0.4.15 a push is refused with 400 INVALID_ARGUMENT naming the field; v0.4.16 takes it',
    async () => {
      await using old = createFakeOpenViking({ version: '0.4.15', apiKey: key })
      expect(await failure(storeFor(old).write('ws', 'a.txt', text('a')))).toEqual({
        name: 'StoreRefusedError',
        message:
          `openviking at ${old.url}: batch-write "a.txt" in workspace ws failed: HTTP 400 ` +
          'INVALID_ARGUMENT: Invalid request parameters: body.operations.0.precondition: ' +
          'Field required',
      })
      // A refusal is not retried.
      expect(old.requests.filter((r) => r.path === batchPath).length).toBe(1)
      expect(storedNames(old)).toEqual([])
      await using current = createFakeOpenViking({ version: '0.4.16', apiKey: key })
      await storeFor(current).write('ws', 'a.txt', text('a'))
      expect(storedNames(current)).toEqual(['.ccbroker-manifest.json', 'a.txt'])
    },
  )

  test.concurrent(
    'a ROOT key fails with 403 PERMISSION_DENIED as an UpstreamError, not retried; a user key works',
    async () => {
      await using fake = createFakeOpenViking({ apiKey: key, rootKey })
      const store = storeFor(fake, { apiKey: rootKey })
      const refused = (op: string, what: string) => ({
        name: 'UpstreamError',
        message: `openviking at ${fake.url}: ${op} ${what} in workspace ws failed: HTTP 403 PERMISSION_DENIED: ${rootRefusal}`,
      })
      expect(await failure(store.write('ws', 'a.txt', text('a')))).toEqual(
        refused('mkdir', '"a.txt"'),
      )
      expect(await failure(store.read('ws', 'a.txt'))).toEqual(refused('read', '"a.txt"'))
      // 401 and 403 are not retried either: an operator has to change the key.
      expect(fake.requests.length).toBe(2)
      expect(fake.files.size).toBe(0)
      await storeFor(fake).write('ws', 'a.txt', text('a'))
      expect(await storeFor(fake).read('ws', 'a.txt')).toEqual(text('a'))
    },
  )

  test.concurrent(
    "a big file's index goes in a request after all its parts; a write failing mid-batch keeps the earlier parts and leaves the file unlisted",
    async () => {
      await using fake = createFakeOpenViking({ apiKey: key })
      const limits = { maxFileBytes: 1000, partBytes: 400, maxRequestBytes: 4000 }
      const store = storeFor(fake, { limits, retry: { attempts: 1 } })
      const bytes = crypto.getRandomValues(new Uint8Array(2000))
      const dir = `${root}/f.bin.ccbroker-parts`
      fake.failWrite(`${dir}/part-2`)
      expect((await failure(store.write('ws', 'f.bin', bytes)))?.message).toEndWith(
        `batch-write "f.bin" in workspace ws failed: HTTP 500 INTERNAL: injected INTERNAL writing ${dir}/part-2`,
      )
      expect(fake.writes).toEqual([`${dir}/part-0`, `${dir}/part-1`])
      expect(await store.list('ws')).toEqual([])
      await store.write('ws', 'f.bin', bytes)
      const requested = fake.requests
        .filter((r) => r.path === batchPath)
        .map((r) => (r.body as { operations: { uri: string }[] }).operations.map((o) => o.uri))
      const parts = [0, 1, 2, 3, 4].map((n) => `${dir}/part-${n}`)
      expect(requested).toEqual([
        parts,
        parts,
        [`${dir}/parts.json`],
        [`${root}/.ccbroker-manifest.json`],
      ])
      expect(await store.list('ws')).toEqual([{ path: 'f.bin', size: 2000 }])
      expect(await store.read('ws', 'f.bin')).toEqual(bytes)
    },
  )
})

describe('fake OpenViking versions', () => {
  const op = (name: string) => ({ uri: `${root}/${name}`, content: name })

  test.concurrent('a batch applies sorted by URI, whatever the order sent', async () => {
    await using fake = createFakeOpenViking({ apiKey: key })
    await post(fake, '/api/v1/fs/mkdir', { uri: root })
    const operations = ['c', 'a', 'b'].map((n) => ({ ...op(n), mode: 'upsert' }))
    expect((await post(fake, batchPath, { root_uri: root, operations })).status).toBe(200)
    expect(fake.writes).toEqual([`${root}/a`, `${root}/b`, `${root}/c`])
    // A failed write stops the batch; the writes sorted before it stay, even ones sent after.
    fake.failWrite(`${root}/e`)
    const next = ['f', 'e', 'd'].map((n) => ({ ...op(n), mode: 'upsert' }))
    expect(await post(fake, batchPath, { root_uri: root, operations: next })).toEqual({
      status: 500,
      body: {
        status: 'error',
        error: { code: 'INTERNAL', message: `injected INTERNAL writing ${root}/e`, details: null },
      },
    })
    expect(fake.writes.slice(3)).toEqual([`${root}/d`])
    expect(storedNames(fake)).toEqual(['a', 'b', 'c', 'd'])
  })

  test.concurrent(
    "v0.4.15 requires a precondition and forbids mode, with OpenViking's validation envelope",
    async () => {
      await using fake = createFakeOpenViking({ version: '0.4.15', apiKey: key })
      await post(fake, '/api/v1/fs/mkdir', { uri: root })
      const operations = [{ ...op('a'), mode: 'upsert' }]
      expect(await post(fake, batchPath, { root_uri: root, operations })).toEqual({
        status: 400,
        body: {
          status: 'error',
          error: {
            code: 'INVALID_ARGUMENT',
            message: 'Invalid request parameters: body.operations.0.precondition: Field required',
            details: {
              validation_errors: [
                {
                  loc: ['body', 'operations', '0', 'precondition'],
                  message: 'Field required',
                  type: 'missing',
                },
                {
                  loc: ['body', 'operations', '0', 'mode'],
                  message: 'Extra inputs are not permitted',
                  type: 'extra_forbidden',
                },
              ],
            },
          },
        },
      })
      const create = [{ ...op('a'), precondition: { kind: 'create_if_absent' } }]
      expect((await post(fake, batchPath, { root_uri: root, operations: create })).status).toBe(200)
      const again = await post(fake, batchPath, {
        root_uri: root,
        operations: [{ ...create[0], content: 'b' }],
      })
      expect(again.status).toBe(409)
      const base_hash = `sha256:${new Bun.CryptoHasher('sha256').update('a').digest('hex')}`
      const replace = [
        { ...op('a'), content: 'b', precondition: { kind: 'replace_if_hash', base_hash } },
      ]
      expect((await post(fake, batchPath, { root_uri: root, operations: replace })).status).toBe(
        200,
      )
      expect(storedNames(fake)).toEqual(['a'])
      expect(fake.files.get(`${root}/a`)).toEqual(text('b'))
    },
  )

  test.concurrent('v0.4.16 forbids precondition and takes only the four modes', async () => {
    await using fake = createFakeOpenViking({ apiKey: key })
    await post(fake, '/api/v1/fs/mkdir', { uri: root })
    const errors = async (operation: Record<string, unknown>) => {
      const res = await post(fake, batchPath, { root_uri: root, operations: [operation] })
      const error = res.body.error as { details: { validation_errors: unknown } }
      return { status: res.status, errors: error.details.validation_errors }
    }
    expect(await errors({ ...op('a'), precondition: { kind: 'create_if_absent' } })).toEqual({
      status: 400,
      errors: [
        {
          loc: ['body', 'operations', '0', 'precondition'],
          message: 'Extra inputs are not permitted',
          type: 'extra_forbidden',
        },
      ],
    })
    expect(await errors({ ...op('a'), mode: 'overwrite' })).toEqual({
      status: 400,
      errors: [
        {
          loc: ['body', 'operations', '0', 'mode'],
          message: "Input should be 'replace', 'append', 'create' or 'upsert'",
          type: 'literal_error',
        },
      ],
    })
    expect(storedNames(fake)).toEqual([])
  })

  test.concurrent('v0.4.13 takes 128 operations per request, v0.4.14 takes 256', async () => {
    const write = async (version: string, count: number) => {
      await using fake = createFakeOpenViking({ version, apiKey: key })
      await post(fake, '/api/v1/fs/mkdir', { uri: root })
      const operations = Array.from({ length: count }, (_, i) => ({
        ...op(`f${i}`),
        precondition: { kind: 'create_if_absent' },
      }))
      const res = await post(fake, batchPath, { root_uri: root, operations })
      const error = res.body.error as { code: string; message: string } | null
      return { status: res.status, error: error && `${error.code}: ${error.message}` }
    }
    expect(await write('0.4.13', 129)).toEqual({
      status: 429,
      error: 'RESOURCE_EXHAUSTED: batch-write supports at most 128 operations',
    })
    expect(await write('0.4.13', 128)).toEqual({ status: 200, error: null })
    expect(await write('0.4.14', 256)).toEqual({ status: 200, error: null })
  })

  test.concurrent(
    'api_key mode: 401 without a key or with a wrong one, 403 for ROOT on data APIs',
    async () => {
      await using fake = createFakeOpenViking({ apiKey: key, rootKey })
      const mkdir = async (apiKey: string) => {
        const res = await fetch(`${fake.url}/api/v1/fs/mkdir`, {
          method: 'POST',
          headers: apiKey ? { 'x-api-key': apiKey } : {},
          body: JSON.stringify({ uri: root }),
        })
        const { error } = (await res.json()) as { error: { code: string; message: string } }
        return `${res.status} ${error.code}: ${error.message}`
      }
      expect(await mkdir('')).toBe('401 UNAUTHENTICATED: Missing API Key when resolving identity.')
      expect(await mkdir('nope')).toBe('401 UNAUTHENTICATED: Invalid API Key')
      expect(await mkdir(rootKey)).toBe(`403 PERMISSION_DENIED: ${rootRefusal}`)
      expect(fake.dirs.has(root)).toBe(false)
    },
  )
})
