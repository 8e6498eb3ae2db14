import { describe, expect, test } from 'bun:test'
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { WorkerContext } from '../../../src/mcp/context.ts'
import { registerWorkspaceTools } from '../../../src/mcp/tools/workspace.ts'
import { startMcpHarness, textOf } from '../../helpers/mcp-harness.ts'

/** A workspace directory and, next to it, an outside directory no tool may touch. */
async function tempWorkspace() {
  const base = await mkdtemp(join(tmpdir(), 'ws-tools-'))
  const root = join(base, 'workspace')
  const outside = join(base, 'outside')
  await mkdir(root)
  await mkdir(outside)
  await writeFile(join(outside, 'secret.txt'), 'top secret')
  return {
    root,
    outside,
    /** Names in the outside directory: proof that nothing was written there. */
    outsideNames: async () => (await readdir(outside)).sort(),
    [Symbol.asyncDispose]: () => rm(base, { recursive: true, force: true }),
  }
}

async function startTools(root: string, maxFileBytes?: number, maxEntries?: number) {
  const ctx: WorkerContext = {
    sessionId: 'ses_1',
    workspaceId: 'ws_1',
    turnId: 'turn_1',
    workspaceDir: root,
  }
  return startMcpHarness((server) =>
    registerWorkspaceTools(server, ctx, { maxFileBytes, maxEntries }),
  )
}

const binary = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff, 0xfe, 0x80, 0x0a])

describe('workspace tools', () => {
  test('tools/list shows exact required and optional fields, all described', async () => {
    await using ws = await tempWorkspace()
    await using mcp = await startTools(ws.root)
    expect(await mcp.shapes()).toEqual({
      workspace_read: { required: ['path'], optional: ['encoding'], strict: true, described: true },
      workspace_write: {
        required: ['content', 'path'],
        optional: ['encoding'],
        strict: true,
        described: true,
      },
      workspace_ls: {
        required: [],
        optional: ['path', 'recursive'],
        strict: true,
        described: true,
      },
    })
    const { tools } = await mcp.client.listTools()
    const ls = tools.find((t) => t.name === 'workspace_ls')
    expect(Object.keys(ls?.outputSchema?.properties ?? {}).sort()).toEqual(['entries', 'truncated'])
    const write = tools.find((t) => t.name === 'workspace_write')
    expect(write?.inputSchema.properties?.encoding).toMatchObject({ enum: ['utf8', 'base64'] })
  })

  test('workspace_write creates parent directories and writes exactly the text', async () => {
    await using ws = await tempWorkspace()
    await using mcp = await startTools(ws.root)
    const text = 'héllo\nwörld ✓\n'
    const result = await mcp.call('workspace_write', { path: 'notes/day/one.md', content: text })
    expect(result).toEqual({
      content: [
        { type: 'text', text: `Wrote ${Buffer.byteLength(text)} bytes to "notes/day/one.md".` },
      ],
    })
    expect(await readFile(join(ws.root, 'notes/day/one.md'), 'utf8')).toBe(text)
    // Atomic write leaves no temp file behind.
    expect(await readdir(join(ws.root, 'notes/day'))).toEqual(['one.md'])
  })

  test('workspace_write replaces a file, and base64 content round-trips binary bytes', async () => {
    await using ws = await tempWorkspace()
    await using mcp = await startTools(ws.root)
    await writeFile(join(ws.root, 'a.bin'), 'old')
    const b64 = Buffer.from(binary).toString('base64')
    const result = await mcp.call('workspace_write', {
      path: 'a.bin',
      content: b64,
      encoding: 'base64',
    })
    expect(result.isError).toBeUndefined()
    expect(new Uint8Array(await readFile(join(ws.root, 'a.bin')))).toEqual(binary)
    const back = await mcp.call('workspace_read', { path: 'a.bin', encoding: 'base64' })
    expect(back).toEqual({ content: [{ type: 'text', text: b64 }] })
    expect(await readdir(ws.root)).toEqual(['a.bin'])
  })

  test.each([
    ['not base64 at all!', 'content is not valid base64'],
    ['QUJD=', 'content is not valid base64'],
    ['QUI=QUI=', 'content is not valid base64'],
    ['QUJ-', 'content is not valid base64'],
  ])('workspace_write with bad base64 %j → error, nothing written', async (content, message) => {
    await using ws = await tempWorkspace()
    await using mcp = await startTools(ws.root)
    const result = await mcp.call('workspace_write', { path: 'x.bin', content, encoding: 'base64' })
    expect(result.isError).toBe(true)
    expect(textOf(result)).toStartWith(message)
    expect(await readdir(ws.root)).toEqual([])
  })

  test('workspace_write over the size cap → error, nothing written', async () => {
    await using ws = await tempWorkspace()
    await using mcp = await startTools(ws.root, 16)
    const result = await mcp.call('workspace_write', { path: 'big.txt', content: 'x'.repeat(17) })
    expect(result).toEqual({
      content: [
        {
          type: 'text',
          text:
            '"big.txt" is 17 bytes; workspace_write takes at most 16 bytes — split it into ' +
            'smaller files',
        },
      ],
      isError: true,
    })
    expect(await readdir(ws.root)).toEqual([])
  })

  test('workspace_read returns text as is', async () => {
    await using ws = await tempWorkspace()
    await using mcp = await startTools(ws.root)
    await mkdir(join(ws.root, 'docs'))
    await writeFile(join(ws.root, 'docs/readme.md'), '# Title\n\nbody ✓\n')
    const result = await mcp.call('workspace_read', { path: 'docs/readme.md' })
    expect(result).toEqual({ content: [{ type: 'text', text: '# Title\n\nbody ✓\n' }] })
  })

  test('workspace_read of binary content says so and returns base64', async () => {
    await using ws = await tempWorkspace()
    await using mcp = await startTools(ws.root)
    await writeFile(join(ws.root, 'img.png'), binary)
    const result = await mcp.call('workspace_read', { path: 'img.png' })
    expect(result).toEqual({
      content: [
        {
          type: 'text',
          text:
            '"img.png" is binary (9 bytes, not UTF-8 text); the next block is its content as ' +
            'base64. To change it, write base64 back with workspace_write encoding "base64".',
        },
        { type: 'text', text: Buffer.from(binary).toString('base64') },
      ],
    })
  })

  test.each([
    ['missing.txt', '"missing.txt" does not exist in the workspace; list it with workspace_ls'],
    ['docs', '"docs" is a directory; list it with workspace_ls'],
    [
      'big.txt',
      '"big.txt" is 17 bytes; workspace_read takes at most 16 bytes — process it on an ' +
        'executor with remote_* tools instead',
    ],
  ])('workspace_read %s → error result', async (path, message) => {
    await using ws = await tempWorkspace()
    await using mcp = await startTools(ws.root, 16)
    await mkdir(join(ws.root, 'docs'))
    await writeFile(join(ws.root, 'big.txt'), 'x'.repeat(17))
    const result = await mcp.call('workspace_read', { path })
    expect(result).toEqual({ content: [{ type: 'text', text: message }], isError: true })
  })

  test('workspace_ls lists the root by default, with types and sizes', async () => {
    await using ws = await tempWorkspace()
    await using mcp = await startTools(ws.root)
    await mkdir(join(ws.root, 'src/lib'), { recursive: true })
    await writeFile(join(ws.root, 'a.txt'), 'abc')
    await writeFile(join(ws.root, 'src/lib/b.ts'), 'export {}\n')
    await symlink('a.txt', join(ws.root, 'link-a'))
    const result = await mcp.call('workspace_ls', {})
    expect(result).toEqual({
      content: [{ type: 'text', text: 'file 3 a.txt\nsymlink 5 link-a\ndir 0 src/' }],
      structuredContent: {
        entries: [
          { path: 'a.txt', type: 'file', size: 3 },
          { path: 'link-a', type: 'symlink', size: 5 },
          { path: 'src', type: 'dir', size: 0 },
        ],
        truncated: false,
      },
    })
    const deep = await mcp.call('workspace_ls', { path: 'src', recursive: true })
    expect(deep.structuredContent).toEqual({
      entries: [
        { path: 'src/lib', type: 'dir', size: 0 },
        { path: 'src/lib/b.ts', type: 'file', size: 10 },
      ],
      truncated: false,
    })
    const one = await mcp.call('workspace_ls', { path: 'a.txt' })
    expect(one.structuredContent).toEqual({
      entries: [{ path: 'a.txt', type: 'file', size: 3 }],
      truncated: false,
    })
  })

  test('workspace_ls stops at maxEntries and says it was truncated', async () => {
    await using ws = await tempWorkspace()
    await using mcp = await startTools(ws.root, undefined, 2)
    for (const name of ['a', 'b', 'c']) await writeFile(join(ws.root, name), name)
    const result = await mcp.call('workspace_ls', {})
    expect(result).toEqual({
      content: [
        {
          type: 'text',
          text: 'file 1 a\nfile 1 b\n… truncated at 2 entries; list a subdirectory instead',
        },
      ],
      structuredContent: {
        entries: [
          { path: 'a', type: 'file', size: 1 },
          { path: 'b', type: 'file', size: 1 },
        ],
        truncated: true,
      },
    })
  })

  test('a symlink that stays inside the workspace is followed', async () => {
    await using ws = await tempWorkspace()
    await using mcp = await startTools(ws.root)
    await mkdir(join(ws.root, 'real'))
    await writeFile(join(ws.root, 'real/f.txt'), 'inside')
    await symlink(join(ws.root, 'real'), join(ws.root, 'alias'))
    expect(await mcp.call('workspace_read', { path: 'alias/f.txt' })).toEqual({
      content: [{ type: 'text', text: 'inside' }],
    })
    const write = await mcp.call('workspace_write', { path: 'alias/g.txt', content: 'new' })
    expect(write.isError).toBeUndefined()
    expect(await readFile(join(ws.root, 'real/g.txt'), 'utf8')).toBe('new')
  })

  // Each escape: the path a model might send, and the layout that makes it dangerous.
  const escapes = [
    { name: 'dot-dot', path: '../outside/secret.txt', message: 'contains ".."' },
    { name: 'nested dot-dot', path: 'sub/../../outside/x.txt', message: 'contains ".."' },
    { name: 'absolute', path: '/etc/passwd', message: 'is absolute' },
    { name: 'home', path: '~/x.txt', message: 'is absolute' },
    { name: 'symlinked parent', path: 'out-dir/secret.txt', message: 'symlink that leaves' },
    { name: 'symlinked parent, new file', path: 'out-dir/new.txt', message: 'symlink that leaves' },
    { name: 'final symlink', path: 'out-file', message: 'symlink that leaves' },
    { name: 'dangling symlink', path: 'dangling', message: 'symlink that leaves' },
    { name: 'chained symlink', path: 'hop/secret.txt', message: 'symlink that leaves' },
  ]

  async function escapeLayout(root: string, outside: string) {
    await symlink(outside, join(root, 'out-dir'))
    await symlink(join(outside, 'secret.txt'), join(root, 'out-file'))
    await symlink(join(outside, 'not-yet.txt'), join(root, 'dangling'))
    await symlink('out-dir', join(root, 'hop'))
  }

  describe.each(escapes)('path escape: $name ($path)', ({ path, message }) => {
    test('workspace_write is rejected and nothing is written outside', async () => {
      await using ws = await tempWorkspace()
      await using mcp = await startTools(ws.root)
      await escapeLayout(ws.root, ws.outside)
      const result = await mcp.call('workspace_write', { path, content: 'pwned' })
      expect(result.isError).toBe(true)
      expect(textOf(result)).toContain(message)
      expect(await ws.outsideNames()).toEqual(['secret.txt'])
      expect(await readFile(join(ws.outside, 'secret.txt'), 'utf8')).toBe('top secret')
      expect((await readdir(ws.root)).sort()).toEqual(['dangling', 'hop', 'out-dir', 'out-file'])
    })

    test('workspace_read is rejected', async () => {
      await using ws = await tempWorkspace()
      await using mcp = await startTools(ws.root)
      await escapeLayout(ws.root, ws.outside)
      const result = await mcp.call('workspace_read', { path })
      expect(result.isError).toBe(true)
      expect(textOf(result)).toContain(message)
      expect(textOf(result)).not.toContain('top secret')
    })

    test('workspace_ls is rejected', async () => {
      await using ws = await tempWorkspace()
      await using mcp = await startTools(ws.root)
      await escapeLayout(ws.root, ws.outside)
      const result = await mcp.call('workspace_ls', { path })
      expect(result.isError).toBe(true)
      expect(textOf(result)).toContain(message)
    })
  })

  test('workspace_ls of the root lists escaping symlinks as symlinks without following them', async () => {
    await using ws = await tempWorkspace()
    await using mcp = await startTools(ws.root)
    await escapeLayout(ws.root, ws.outside)
    const result = await mcp.call('workspace_ls', { recursive: true })
    expect(result.structuredContent).toMatchObject({
      entries: [
        { path: 'dangling', type: 'symlink' },
        { path: 'hop', type: 'symlink' },
        { path: 'out-dir', type: 'symlink' },
        { path: 'out-file', type: 'symlink' },
      ],
    })
    expect(textOf(result)).not.toContain('secret.txt')
  })

  test.each([
    ['workspace_read', {}, 'path'],
    ['workspace_read', { path: 'a', encoding: 'hex' }, 'encoding'],
    ['workspace_write', { path: 'a' }, 'content'],
    ['workspace_write', { path: '', content: 'x' }, 'path'],
    ['workspace_ls', { path: 'a', depth: 3 }, 'depth'],
  ])('%s rejects bad arguments %j (names %s)', async (name, args, field) => {
    await using ws = await tempWorkspace()
    await using mcp = await startTools(ws.root)
    const result = await mcp.call(name, args)
    expect(result.isError).toBe(true)
    expect(textOf(result)).toContain('Input validation error')
    expect(textOf(result)).toContain(field)
    expect(await readdir(ws.root)).toEqual([])
  })

  test('workspace_write to the root or onto a directory → error', async () => {
    await using ws = await tempWorkspace()
    await using mcp = await startTools(ws.root)
    await mkdir(join(ws.root, 'dir'))
    const root = await mcp.call('workspace_write', { path: '.', content: 'x' })
    expect(textOf(root)).toBe('path names the workspace root; give a file path')
    const dir = await mcp.call('workspace_write', { path: 'dir', content: 'x' })
    expect(textOf(dir)).toBe('"dir" is a directory; choose a file path')
    expect(await readdir(join(ws.root, 'dir'))).toEqual([])
  })
})
