import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'
import { BadRequestError } from '../../errors.ts'
import type { Logger } from '../../log.ts'
import type { ExecutorRegistryClient } from '../backends/executor-registry.ts'
import type { FetchLike } from '../../outbound/guard.ts'
import type { ImBridgeClient, ImTarget } from '../backends/im-bridge.ts'
import type { WorkerContext } from '../context.ts'
import { loadSource } from '../sources.ts'
import { failure, progressReporter, textResult, type ToolExtra } from './result.ts'

export interface ImToolsDeps {
  imBridge: ImBridgeClient
  /** Reads `exe_<id>:/path` sources; without one such sources are refused. */
  registry: ExecutorRegistryClient | null
  /** For http(s) sources: the broker's outbound guard (no loopback or private addresses). */
  fetch: FetchLike
  /** Largest image or file sent, from any source; default 20 MiB. */
  maxSourceBytes?: number
  /** Deadline for downloading an http(s) source; default 60 s. */
  fetchTimeoutMs?: number
  log?: Logger
}

const imageFormats = ['png', 'jpeg', 'gif', 'webp'] as const
type ImageFormat = (typeof imageFormats)[number]

const source = (what: string) =>
  z
    .string()
    .min(1)
    .describe(
      `The ${what} to send: an http(s) URL; "exe_<id>:/absolute/path" for a file on an executor ` +
        '(see list_executors); or the bytes as standard base64 (a data: URL also works)',
    )
const caption = z.string().min(1).optional().describe('Text shown with it in the conversation')

export function registerImTools(server: McpServer, ctx: WorkerContext, deps: ImToolsDeps): void {
  const maxBytes = deps.maxSourceBytes ?? 20 * 1024 * 1024
  const load = (src: string, extra: ToolExtra, tool: string) =>
    loadSource(src, {
      registry: deps.registry,
      fetch: deps.fetch,
      maxBytes,
      fetchTimeoutMs: deps.fetchTimeoutMs ?? 60_000,
      signal: extra.signal,
      onProgress: progressReporter(extra, tool),
    })
  const target = (tool: string): ImTarget => {
    if (!ctx.imChannelId || !ctx.imUserId)
      throw new BadRequestError(
        `${tool} only works when the turn came from an IM conversation, and this one did not; ` +
          'put what you wanted to send in your reply instead',
      )
    return { channelId: ctx.imChannelId, toUserId: ctx.imUserId }
  }
  const annotations = (title: string) => ({
    title,
    readOnlyHint: false,
    destructiveHint: false,
    idempotentHint: false,
    openWorldHint: true,
  })

  server.registerTool(
    'send_message',
    {
      title: 'Send an IM message',
      description:
        'Sends a text message to the user in the IM conversation this turn came from, right away ' +
        '(e.g. a progress update before a long task). Only works for turns that came from IM.',
      inputSchema: z.strictObject({
        text: z.string().min(1).describe('The message text, as the user should read it'),
      }),
      annotations: annotations('Send an IM message'),
    },
    async ({ text }, extra): Promise<CallToolResult> => {
      try {
        await deps.imBridge.sendMessage(target('send_message'), text, { signal: extra.signal })
        return textResult('Sent the message to the IM conversation.')
      } catch (err) {
        return failure(err, 'send_message', deps.log)
      }
    },
  )

  server.registerTool(
    'send_image',
    {
      title: 'Send an image over IM',
      description:
        'Sends an image (PNG, JPEG, GIF or WebP) to the user in the IM conversation this turn ' +
        `came from. At most ${mib(maxBytes)}. Only works for turns that came from IM.`,
      inputSchema: z.strictObject({
        source: source('image'),
        caption,
        format: z
          .enum(imageFormats)
          .optional()
          .describe('Image format; inferred from the bytes when omitted'),
      }),
      annotations: annotations('Send an image over IM'),
    },
    async (args, extra): Promise<CallToolResult> => {
      try {
        const to = target('send_image')
        const bytes = await load(args.source, extra, 'send_image')
        const sniffed = sniffImage(bytes)
        if (!args.format && !sniffed)
          throw new BadRequestError(
            'the image is not PNG, JPEG, GIF or WebP (judging by its first bytes); convert it, ' +
              'pass format if you are sure, or send it with send_file',
          )
        if (args.format && sniffed && args.format !== sniffed)
          throw new BadRequestError(
            `format is "${args.format}" but the bytes are ${sniffed}; ` +
              'omit format to use the real one',
          )
        const format = args.format ?? sniffed
        await deps.imBridge.sendImage(
          to,
          { base64: bytes.toString('base64'), format, caption: args.caption },
          { signal: extra.signal },
        )
        return textResult(
          `Sent the image (${format}, ${bytes.length} bytes) to the IM conversation.`,
        )
      } catch (err) {
        return failure(err, 'send_image', deps.log)
      }
    },
  )

  server.registerTool(
    'send_file',
    {
      title: 'Send a file over IM',
      description:
        'Sends a file as an attachment to the user in the IM conversation this turn came from. ' +
        `At most ${mib(maxBytes)}. Only works for turns that came from IM.`,
      inputSchema: z.strictObject({
        source: source('file'),
        filename: z
          .string()
          .min(1)
          .max(255)
          .regex(/^[^/\\\0]+$/, 'a bare file name, without "/" or "\\"')
          .describe('Name the user sees, e.g. "report.pdf" (no directories)'),
        caption,
      }),
      annotations: annotations('Send a file over IM'),
    },
    async (args, extra): Promise<CallToolResult> => {
      try {
        const to = target('send_file')
        const bytes = await load(args.source, extra, 'send_file')
        await deps.imBridge.sendFile(
          to,
          { base64: bytes.toString('base64'), filename: args.filename, caption: args.caption },
          { signal: extra.signal },
        )
        return textResult(`Sent "${args.filename}" (${bytes.length} bytes) to the IM conversation.`)
      } catch (err) {
        return failure(err, 'send_file', deps.log)
      }
    },
  )
}

export function sniffImage(bytes: Uint8Array): ImageFormat | undefined {
  const ascii = (from: number, to: number) => String.fromCharCode(...bytes.subarray(from, to))
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]
  if (png.every((b, i) => bytes[i] === b)) return 'png'
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg'
  if (ascii(0, 6) === 'GIF87a' || ascii(0, 6) === 'GIF89a') return 'gif'
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'webp'
  return undefined
}

function mib(bytes: number): string {
  return `${Math.round((bytes / 1024 / 1024) * 10) / 10} MiB`
}
