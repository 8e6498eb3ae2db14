import { randomUUID } from 'node:crypto'
import {
  lstat,
  mkdir,
  readdir,
  readFile,
  realpath,
  rename,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises'
import { basename, dirname, join, relative, sep } from 'node:path'
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'
import {
  BadRequestError,
  NotFoundError,
  PathEscapeError,
  PayloadTooLargeError,
} from '../../errors.ts'
import type { Logger } from '../../log.ts'
import { isWithin, resolveInside } from '../../workspace/paths.ts'
import type { WorkerContext } from '../context.ts'
import { failure, textResult } from './result.ts'
import { decodeBase64Strict } from '../sources.ts'

export interface WorkspaceToolsDeps {
  /** Largest file workspace_read returns and workspace_write accepts; default 5 MiB. */
  maxFileBytes?: number
  /** Most entries workspace_ls returns; default 5000. */
  maxEntries?: number
  log?: Logger
}

const relativePath = z
  .string()
  .min(1)
  .describe('Path relative to the workspace root, e.g. "notes/todo.md"; no "..", no leading "/"')

const entrySchema = z.object({
  path: z.string().describe('Path relative to the workspace root'),
  type: z
    .enum(['file', 'dir', 'symlink', 'other'])
    .describe('Kind of entry (symlinks are not followed)'),
  size: z.number().describe('Size in bytes (0 for directories)'),
})
type Entry = z.infer<typeof entrySchema>

export function registerWorkspaceTools(
  server: McpServer,
  ctx: WorkerContext,
  deps: WorkspaceToolsDeps = {},
): void {
  const maxBytes = deps.maxFileBytes ?? 5 * 1024 * 1024
  const maxEntries = deps.maxEntries ?? 5000
  const root = ctx.workspaceDir

  server.registerTool(
    'workspace_read',
    {
      title: 'Read a workspace file',
      description:
        "Reads a file from this session's workspace (kept between turns). Text comes back as is; " +
        `binary content comes back as base64 after a note saying so. Files over ${mib(maxBytes)} ` +
        'are refused.',
      inputSchema: z.strictObject({
        path: relativePath,
        encoding: z
          .enum(['utf8', 'base64'])
          .optional()
          .describe('"base64" to always get base64; by default text is returned as text'),
      }),
      annotations: { title: 'Read a workspace file', readOnlyHint: true, openWorldHint: false },
    },
    async ({ path, encoding }, extra): Promise<CallToolResult> => {
      try {
        const target = await confined(root, path)
        const info = await stat(target).catch((err) => missing(err, path))
        if (info.isDirectory())
          throw new BadRequestError(`"${path}" is a directory; list it with workspace_ls`)
        if (!info.isFile()) throw new BadRequestError(`"${path}" is not a regular file`)
        if (info.size > maxBytes) throw tooLarge(path, info.size, maxBytes, 'read')
        const bytes = await readFile(target, { signal: extra.signal })
        if (bytes.length > maxBytes) throw tooLarge(path, bytes.length, maxBytes, 'read')
        if (encoding === 'base64') return textResult(bytes.toString('base64'))
        const text = utf8(bytes)
        if (text !== undefined) return textResult(text)
        return {
          content: [
            {
              type: 'text',
              text:
                `"${path}" is binary (${bytes.length} bytes, not UTF-8 text); the next block ` +
                'is its content as base64. To change it, write base64 back with workspace_write ' +
                'encoding "base64".',
            },
            { type: 'text', text: bytes.toString('base64') },
          ],
        }
      } catch (err) {
        return failure(err, 'workspace_read', deps.log)
      }
    },
  )

  server.registerTool(
    'workspace_write',
    {
      title: 'Write a workspace file',
      description:
        "Creates or replaces a file in this session's workspace (kept between turns), creating " +
        'parent directories. The write is atomic: readers see the old or the new file, never ' +
        `half of it. At most ${mib(maxBytes)}.`,
      inputSchema: z.strictObject({
        path: relativePath,
        content: z.string().describe('The full new content of the file'),
        encoding: z
          .enum(['utf8', 'base64'])
          .optional()
          .describe('How content is encoded: "utf8" text (default) or "base64" for binary data'),
      }),
      annotations: {
        title: 'Write a workspace file',
        readOnlyHint: false,
        destructiveHint: true,
        idempotentHint: true,
        openWorldHint: false,
      },
    },
    async ({ path, content, encoding }, extra): Promise<CallToolResult> => {
      try {
        const bytes =
          encoding === 'base64'
            ? decodeBase64Strict(content, 'content')
            : Buffer.from(content, 'utf8')
        if (bytes.length > maxBytes) throw tooLarge(path, bytes.length, maxBytes, 'write')
        const target = await confined(root, path)
        if (target === (await realpath(root)))
          throw new BadRequestError('path names the workspace root; give a file path')
        await mkdir(dirname(target), { recursive: true })
        // Re-check after mkdir: a parent that appeared meanwhile must still be inside.
        const parent = await realpath(dirname(target))
        if (!isWithin(await realpath(root), parent))
          throw new PathEscapeError(
            `path "${path}" goes through a symlink that leaves the workspace`,
          )
        const existing = await lstat(target).catch(() => null)
        if (existing?.isDirectory())
          throw new BadRequestError(`"${path}" is a directory; choose a file path`)
        await atomicWrite(join(parent, basename(target)), bytes, existing, extra.signal)
        return textResult(`Wrote ${bytes.length} bytes to "${path}".`)
      } catch (err) {
        return failure(err, 'workspace_write', deps.log)
      }
    },
  )

  server.registerTool(
    'workspace_ls',
    {
      title: 'List workspace files',
      description:
        "Lists entries of a directory in this session's workspace with their type and size in " +
        'bytes, one per line as "<type> <size> <path>". Symlinks are listed, not followed.',
      inputSchema: z.strictObject({
        path: z
          .string()
          .optional()
          .describe('Directory relative to the workspace root; the root if omitted or "."'),
        recursive: z
          .boolean()
          .optional()
          .describe(`List subdirectories too (default false); at most ${maxEntries} entries`),
      }),
      outputSchema: {
        entries: z.array(entrySchema).describe('Entries sorted by path'),
        truncated: z.boolean().describe(`True when more than ${maxEntries} entries matched`),
      },
      annotations: { title: 'List workspace files', readOnlyHint: true, openWorldHint: false },
    },
    async ({ path, recursive }, extra): Promise<CallToolResult> => {
      try {
        const given = path === undefined || path === '' ? '.' : path
        const realRoot = await realpath(root)
        const target = await confined(root, given)
        const info = await stat(target).catch((err) => missing(err, given))
        const entries: Entry[] = []
        let truncated = false
        if (!info.isDirectory()) {
          entries.push({ path: relative(realRoot, target), type: 'file', size: info.size })
        } else {
          const walk = async (dir: string): Promise<void> => {
            extra.signal.throwIfAborted()
            const names = (await readdir(dir)).sort()
            for (const name of names) {
              if (entries.length >= maxEntries) {
                truncated = true
                return
              }
              const full = join(dir, name)
              const e = await lstat(full).catch(() => null)
              if (!e) continue
              const type = e.isFile()
                ? 'file'
                : e.isDirectory()
                  ? 'dir'
                  : e.isSymbolicLink()
                    ? 'symlink'
                    : 'other'
              const rel = relative(realRoot, full).split(sep).join('/')
              entries.push({ path: rel, type, size: type === 'dir' ? 0 : e.size })
              if (recursive && type === 'dir') await walk(full)
            }
          }
          await walk(target)
        }
        entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
        const lines = entries.map(
          (e) => `${e.type} ${e.size} ${e.path}${e.type === 'dir' ? '/' : ''}`,
        )
        if (truncated)
          lines.push(`… truncated at ${maxEntries} entries; list a subdirectory instead`)
        return {
          content: [{ type: 'text', text: lines.length ? lines.join('\n') : '(empty directory)' }],
          structuredContent: { entries, truncated },
        }
      } catch (err) {
        return failure(err, 'workspace_ls', deps.log)
      }
    },
  )
}

/** resolveInside, then the real path of what exists must still be inside (a symlink chain). */
async function confined(root: string, path: string): Promise<string> {
  const target = await resolveInside(root, path)
  const real = await realpath(target).catch(() => null)
  if (real !== null && !isWithin(await realpath(root), real))
    throw new PathEscapeError(`path "${path}" goes through a symlink that leaves the workspace`)
  return target
}

async function atomicWrite(
  target: string,
  bytes: Uint8Array,
  existing: { mode: number; isFile(): boolean } | null,
  signal: AbortSignal,
): Promise<void> {
  const tmp = join(dirname(target), `.${basename(target)}.${randomUUID()}.tmp`)
  // 'wx' never follows or reuses an existing path; rename replaces a symlink, never its target.
  const mode = existing?.isFile() ? existing.mode & 0o7777 : 0o644
  try {
    await writeFile(tmp, bytes, { flag: 'wx', mode, signal })
    await rename(tmp, target)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
}

function utf8(bytes: Uint8Array): string | undefined {
  if (bytes.includes(0)) return undefined
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    return undefined
  }
}

function missing(err: unknown, path: string): never {
  if ((err as { code?: unknown }).code === 'ENOENT')
    throw new NotFoundError(`"${path}" does not exist in the workspace; list it with workspace_ls`)
  throw err
}

function tooLarge(path: string, size: number, max: number, verb: string) {
  return new PayloadTooLargeError(
    `"${path}" is ${size} bytes; workspace_${verb} takes at most ${mib(max)} — ` +
      (verb === 'read'
        ? 'process it on an executor with remote_* tools instead'
        : 'split it into smaller files'),
  )
}

function mib(bytes: number): string {
  const m = bytes / 1024 / 1024
  return m >= 1 ? `${Math.round(m * 10) / 10} MiB` : `${bytes} bytes`
}
