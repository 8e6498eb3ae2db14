import { describe, expect, test } from 'bun:test'
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Manifest, ManifestEntry } from '../../src/workspace/manifest.ts'
import { diffManifests, scanTree } from '../../src/workspace/manifest.ts'
import { tempDir } from '../helpers/temp-dir.ts'

const sha256 = (data: string | Uint8Array) =>
  new Bun.CryptoHasher('sha256').update(data).digest('hex')
const entry = (content: string, mode = 0o644): ManifestEntry => ({
  size: Buffer.byteLength(content),
  sha256: sha256(content),
  mode,
})

describe('scanTree', () => {
  test.concurrent(
    'records every regular file, hidden and empty ones included; skips symlinks',
    async () => {
      await using dir = await tempDir()
      const allBytes = Uint8Array.from({ length: 256 }, (_, i) => i)
      await mkdir(join(dir.path, '.config', 'deep', 'er'), { recursive: true })
      await mkdir(join(dir.path, 'tasks'))
      await mkdir(join(dir.path, 'empty-dir'))
      await writeFile(join(dir.path, '.claude.json'), '{"a":1}')
      await writeFile(join(dir.path, '.config', 'deep', 'er', 'file.txt'), 'deep')
      await writeFile(join(dir.path, 'tasks', '1.json'), '{}')
      await writeFile(join(dir.path, 'empty'), '')
      await writeFile(join(dir.path, 'bin'), allBytes)
      await writeFile(join(dir.path, 'run.sh'), '#!/bin/sh\n')
      await chmod(join(dir.path, 'run.sh'), 0o755)
      await chmod(join(dir.path, '.claude.json'), 0o600)
      await symlink(join(dir.path, 'bin'), join(dir.path, 'link-to-bin'))
      await symlink('/etc', join(dir.path, 'tasks', 'link-out'))

      const scan = await scanTree(dir.path)
      expect(scan).toEqual({
        files: new Map<string, ManifestEntry>([
          ['.claude.json', entry('{"a":1}', 0o600)],
          ['.config/deep/er/file.txt', entry('deep')],
          ['bin', { size: 256, sha256: sha256(allBytes), mode: 0o644 }],
          ['empty', entry('')],
          ['run.sh', entry('#!/bin/sh\n', 0o755)],
          ['tasks/1.json', entry('{}')],
        ]),
        skipped: [
          { path: 'link-to-bin', kind: 'symlink' },
          { path: 'tasks/link-out', kind: 'symlink' },
        ],
      })
      expect([...scan.files.keys()]).toEqual([
        '.claude.json',
        '.config/deep/er/file.txt',
        'bin',
        'empty',
        'run.sh',
        'tasks/1.json',
      ])
    },
  )

  test.concurrent('an empty directory scans to an empty manifest', async () => {
    await using dir = await tempDir()
    expect(await scanTree(dir.path)).toEqual({ files: new Map(), skipped: [] })
  })
})

describe('diffManifests', () => {
  const before: Manifest = new Map([
    ['same', entry('same')],
    ['edited', entry('old')],
    ['chmodded', entry('x', 0o644)],
    ['z-gone', entry('bye')],
    ['a-gone', entry('bye')],
  ])

  test('reports added, changed (content or mode) and deleted paths, each sorted', () => {
    const after: Manifest = new Map([
      ['zz-new', entry('new')],
      ['same', entry('same')],
      ['edited', entry('new')],
      ['chmodded', entry('x', 0o755)],
      ['b-new', entry('')],
    ])
    expect(diffManifests(before, after)).toEqual({
      added: ['b-new', 'zz-new'],
      changed: ['chmodded', 'edited'],
      deleted: ['a-gone', 'z-gone'],
    })
  })

  test('identical manifests differ in nothing', () => {
    expect(diffManifests(before, new Map(before))).toEqual({ added: [], changed: [], deleted: [] })
  })
})
