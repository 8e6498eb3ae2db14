import { describe, expect, test } from 'bun:test'
import { createExecutorRegistryClient } from '../../../src/mcp/backends/executor-registry.ts'
import { createImBridgeClient } from '../../../src/mcp/backends/im-bridge.ts'
import type { WorkerContext } from '../../../src/mcp/context.ts'
import { registerImTools } from '../../../src/mcp/tools/im.ts'
import { createOutboundFetch } from '../../../src/outbound/guard.ts'
import { startFakeExecutorRegistry } from '../../../src/testing/fakes/executor-registry.ts'
import { startFileServer } from '../../fakes/file-server.ts'
import { startFakeImBridge } from '../../../src/testing/fakes/im-bridge.ts'
import { startMcpHarness, textOf } from '../../helpers/mcp-harness.ts'

const secret = 'bridge-secret'
const target = { channel_id: 'chan_9', to_user_id: 'user_7' }
const imCtx: WorkerContext = {
  sessionId: 'ses_1',
  workspaceId: 'ws_1',
  turnId: 'turn_1',
  workspaceDir: '/nonexistent',
  imChannelId: 'chan_9',
  imUserId: 'user_7',
}

const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0xff])
const jpeg = Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46])
const gif = new TextEncoder().encode('GIF89a\x01\x00\x01\x00')
const webp = Uint8Array.from([
  ...new TextEncoder().encode('RIFF'),
  4,
  0,
  0,
  0,
  ...new TextEncoder().encode('WEBPVP8 '),
])
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64')

/** The IM bridge, the executor registry, a file server and the IM tools wired to them. */
async function startIm(
  options: {
    ctx?: WorkerContext
    maxSourceBytes?: number
    fetchTimeoutMs?: number
    bridgeSecret?: string
  } = {},
) {
  const bridge = await startFakeImBridge({ secret })
  const registry = await startFakeExecutorRegistry()
  const files = await startFileServer()
  const mcp = await startMcpHarness((server) =>
    registerImTools(server, options.ctx ?? imCtx, {
      imBridge: createImBridgeClient({ url: bridge.url, secret: options.bridgeSecret ?? secret }),
      registry: createExecutorRegistryClient({ url: registry.url }),
      // The file server is on loopback, which the guard allows only when told to.
      fetch: createOutboundFetch({ allow: ['127.0.0.1/32'] }),
      maxSourceBytes: options.maxSourceBytes,
      fetchTimeoutMs: options.fetchTimeoutMs,
    }),
  )
  return {
    bridge,
    registry,
    web: files,
    mcp,
    async [Symbol.asyncDispose]() {
      await mcp.stop()
      await Promise.all([bridge.stop(), registry.stop(), files.stop()])
    },
  }
}

describe('IM tools', () => {
  test('tools/list shows exact required and optional fields, all described', async () => {
    await using im = await startIm()
    expect(await im.mcp.shapes()).toEqual({
      send_message: { required: ['text'], optional: [], strict: true, described: true },
      send_image: {
        required: ['source'],
        optional: ['caption', 'format'],
        strict: true,
        described: true,
      },
      send_file: {
        required: ['filename', 'source'],
        optional: ['caption'],
        strict: true,
        described: true,
      },
    })
    const { tools } = await im.mcp.client.listTools()
    const image = tools.find((t) => t.name === 'send_image')
    expect(image?.inputSchema.properties?.format).toMatchObject({
      enum: ['png', 'jpeg', 'gif', 'webp'],
    })
  })

  test('send_message posts the text to the IM bridge with the shared secret', async () => {
    await using im = await startIm()
    const result = await im.mcp.call('send_message', { text: 'Working on it…' })
    expect(result).toEqual({
      content: [{ type: 'text', text: 'Sent the message to the IM conversation.' }],
    })
    expect(im.bridge.requests).toEqual([
      {
        path: '/api/internal/imbridge/send',
        secret,
        body: { ...target, text: 'Working on it…' },
      },
    ])
  })

  describe.each([
    ['no IM ids', {}],
    ['only a channel', { imChannelId: 'chan_9' }],
    ['only a user', { imUserId: 'user_7' }],
  ])('without IM context (%s)', (_label, ids) => {
    const ctx: WorkerContext = { ...imCtx, imChannelId: undefined, imUserId: undefined, ...ids }
    test.each([
      ['send_message', { text: 'hi' }],
      ['send_image', { source: b64(png) }],
      ['send_file', { source: b64(png), filename: 'a.png' }],
    ])('%s → error result, nothing sent', async (name, args) => {
      await using im = await startIm({ ctx })
      const result = await im.mcp.call(name, args)
      expect(result).toEqual({
        content: [
          {
            type: 'text',
            text:
              `${name} only works when the turn came from an IM conversation, and this one did ` +
              'not; put what you wanted to send in your reply instead',
          },
        ],
        isError: true,
      })
      expect(im.bridge.requests).toEqual([])
    })
  })

  test.each([
    ['png', png],
    ['jpeg', jpeg],
    ['gif', gif],
    ['webp', webp],
  ])('send_image infers format %s from base64 bytes', async (format, bytes) => {
    await using im = await startIm()
    const result = await im.mcp.call('send_image', { source: b64(bytes), caption: 'Chart' })
    expect(result).toEqual({
      content: [
        {
          type: 'text',
          text: `Sent the image (${format}, ${bytes.length} bytes) to the IM conversation.`,
        },
      ],
    })
    expect(im.bridge.sent).toEqual([
      {
        path: '/api/internal/imbridge/send-image',
        body: { ...target, image_base64: b64(bytes), format, caption: 'Chart' },
      },
    ])
  })

  test('send_image: unknown bytes need format; a format that contradicts the bytes is refused', async () => {
    await using im = await startIm()
    const bmp = new TextEncoder().encode('BM\x00\x00 not really')
    const unknown = await im.mcp.call('send_image', { source: b64(bmp) })
    expect(unknown.isError).toBe(true)
    expect(textOf(unknown)).toStartWith('the image is not PNG, JPEG, GIF or WebP')
    const wrong = await im.mcp.call('send_image', { source: b64(png), format: 'jpeg' })
    expect(textOf(wrong)).toBe(
      'format is "jpeg" but the bytes are png; omit format to use the real one',
    )
    expect(im.bridge.requests).toEqual([])
    const trusted = await im.mcp.call('send_image', { source: b64(bmp), format: 'png' })
    expect(trusted.isError).toBeUndefined()
    expect(im.bridge.sent).toEqual([
      {
        path: '/api/internal/imbridge/send-image',
        body: { ...target, image_base64: b64(bmp), format: 'png' },
      },
    ])
  })

  test('send_image from an http URL sends the downloaded bytes', async () => {
    await using im = await startIm()
    im.web.files.set('/charts/q1.png', png)
    const result = await im.mcp.call('send_image', { source: `${im.web.url}/charts/q1.png` })
    expect(result.isError).toBeUndefined()
    expect(im.bridge.sent).toEqual([
      {
        path: '/api/internal/imbridge/send-image',
        body: { ...target, image_base64: b64(png), format: 'png' },
      },
    ])
  })

  test('a URL source over the cap is refused while streaming, not after downloading it all', async () => {
    await using im = await startIm({ maxSourceBytes: 100_000 })
    const total = 64 * 1024 * 1024
    const result = await im.mcp.call('send_file', {
      source: `${im.web.url}/stream?bytes=${total}`,
      filename: 'big.bin',
    })
    expect(result).toEqual({
      content: [
        {
          type: 'text',
          text:
            `${im.web.url}/stream?… is more than 100000 bytes, over the 100000-byte limit for ` +
            'images and files; send a smaller or compressed version',
        },
      ],
      isError: true,
    })
    expect(im.web.streamedBytes).toBeLessThan(total / 2)
    expect(im.bridge.requests).toEqual([])
  })

  test('a URL whose Content-Length is over the cap is refused before reading the body', async () => {
    await using im = await startIm()
    const result = await im.mcp.call('send_file', {
      source: im.web.declaredHugeUrl,
      filename: 'huge.bin',
    })
    expect(result.isError).toBe(true)
    expect(textOf(result)).toBe(
      `${im.web.declaredHugeUrl} is ${1 << 30} bytes, over the ${20 * 1024 * 1024}-byte ` +
        'limit for images and files; send a smaller or compressed version',
    )
    expect(im.bridge.requests).toEqual([])
  })

  test('a URL that answers 404, or too slowly, is an error result', async () => {
    await using im = await startIm({ fetchTimeoutMs: 150 })
    const missing = await im.mcp.call('send_image', { source: `${im.web.url}/nope.png` })
    expect(textOf(missing)).toBe(
      `GET ${im.web.url}/nope.png answered 404; check the URL and that it is public`,
    )
    const slow = await im.mcp.call('send_image', { source: `${im.web.url}/hang` })
    expect(slow.isError).toBe(true)
    expect(textOf(slow)).toStartWith(`downloading ${im.web.url}/hang took longer than 150 ms`)
    expect(im.bridge.requests).toEqual([])
  })

  test('an exe_ source round-trips every byte value, with the path shell-quoted', async () => {
    await using im = await startIm()
    const bytes = Uint8Array.from({ length: 512 }, (_, i) => (i * 7 + 3) % 256)
    const path = `/data/it's $(rm -rf ~) "q".bin`
    im.registry.files.set(path, bytes)
    const result = await im.mcp.call('send_file', {
      source: `exe_a1:${path}`,
      filename: 'data.bin',
      caption: 'raw dump',
    })
    expect(result).toEqual({
      content: [{ type: 'text', text: 'Sent "data.bin" (512 bytes) to the IM conversation.' }],
    })
    const quoted = `'/data/it'\\''s $(rm -rf ~) "q".bin'`
    expect(im.registry.requests.map((r) => r.body)).toEqual([
      {
        executor_id: 'exe_a1',
        tool: 'Bash',
        arguments: { command: `base64 -w0 -- ${quoted} && echo && wc -c < ${quoted}` },
      },
    ])
    expect(im.bridge.sent).toEqual([
      {
        path: '/api/internal/imbridge/send-file',
        body: { ...target, file_base64: b64(bytes), filename: 'data.bin', caption: 'raw dump' },
      },
    ])
  })

  test('an exe_ source that fails on the executor is an error result with the exit code', async () => {
    await using im = await startIm()
    const result = await im.mcp.call('send_image', { source: 'exe_a1:/tmp/none.png' })
    expect(result).toEqual({
      content: [
        {
          type: 'text',
          text:
            'reading /tmp/none.png on executor "exe_a1" failed (exit code 1): base64: ' +
            '/tmp/none.png: No such file or directory; check the path with remote_ls (the ' +
            'executor needs GNU base64), or pass a URL or base64',
        },
      ],
      isError: true,
    })
    expect(im.bridge.requests).toEqual([])
  })

  test('an exe_ source whose output the executor truncated is refused, not sent short', async () => {
    await using im = await startIm()
    im.registry.script('Bash', () => ({
      output: `${b64(png).slice(0, 8)}\n${png.length}\n`,
      exit_code: 0,
    }))
    const result = await im.mcp.call('send_image', { source: 'exe_a1:/tmp/chart.png' })
    expect(result.isError).toBe(true)
    expect(textOf(result)).toBe(
      'reading /tmp/chart.png on executor "exe_a1" returned 6 of its 13 bytes (output truncated ' +
        'by the executor); send the file from a URL instead',
    )
    im.registry.script('Bash', () => ({
      output: `${b64(png).slice(0, 10)}… [output truncated]`,
      exit_code: 0,
    }))
    const marked = await im.mcp.call('send_image', { source: 'exe_a1:/tmp/chart.png' })
    expect(textOf(marked)).toStartWith(
      'reading /tmp/chart.png on executor "exe_a1" returned output that is not base64',
    )
    expect(im.bridge.requests).toEqual([])
  })

  test.each([
    ['not a url or base64', 'source is not valid base64'],
    ['/home/me/pic.png', 'source is not valid base64'],
    ['iVBORw0KGgo', 'source is not valid base64'],
    ['iVBORw0KGgp=', 'source is not valid base64'],
    ['exe_a1:relative/path.png', 'source is not valid base64'],
  ])('a source %j that is nothing valid → error result, nothing sent', async (src, message) => {
    await using im = await startIm()
    const result = await im.mcp.call('send_file', { source: src, filename: 'x' })
    expect(result.isError).toBe(true)
    expect(textOf(result)).toStartWith(message)
    expect(textOf(result)).toContain('"exe_<id>:/absolute/path"')
    expect(im.bridge.requests).toEqual([])
    expect(im.registry.requests).toEqual([])
  })

  test('a data: URL and line-wrapped base64 are accepted', async () => {
    await using im = await startIm()
    await im.mcp.call('send_image', { source: `data:image/png;base64,${b64(png)}` })
    const wrapped = b64(png).replace(/(.{8})/g, '$1\n')
    await im.mcp.call('send_file', { source: wrapped, filename: 'p.png' })
    expect(im.bridge.sent).toEqual([
      {
        path: '/api/internal/imbridge/send-image',
        body: { ...target, image_base64: b64(png), format: 'png' },
      },
      {
        path: '/api/internal/imbridge/send-file',
        body: { ...target, file_base64: b64(png), filename: 'p.png' },
      },
    ])
  })

  test('a base64 source over the cap is refused', async () => {
    await using im = await startIm({ maxSourceBytes: 8 })
    const result = await im.mcp.call('send_file', { source: b64(png), filename: 'p.png' })
    expect(textOf(result)).toBe(
      'the source is 13 bytes, over the 8-byte limit; send a smaller or compressed version',
    )
    expect(im.bridge.requests).toEqual([])
  })

  test.each([
    ['send_message', {}, 'text'],
    ['send_message', { text: '' }, 'text'],
    ['send_image', { source: b64(png), format: 'bmp' }, 'format'],
    ['send_file', { source: b64(png) }, 'filename'],
    ['send_file', { source: b64(png), filename: '../etc/passwd' }, 'filename'],
    [
      'send_file',
      { source: b64(png), filename: 'a.png', to_user_id: 'someone_else' },
      'to_user_id',
    ],
  ])('%s rejects bad arguments %j (names %s)', async (name, args, field) => {
    await using im = await startIm()
    const result = await im.mcp.call(name, args)
    expect(result.isError).toBe(true)
    expect(textOf(result)).toContain('Input validation error')
    expect(textOf(result)).toContain(field)
    expect(im.bridge.requests).toEqual([])
  })

  test('an IM bridge failure is an error result saying nothing was sent', async () => {
    await using im = await startIm()
    im.bridge.failWith({ status: 502, body: 'wechat upstream timeout' })
    const result = await im.mcp.call('send_message', { text: 'hi' })
    expect(result).toEqual({
      content: [
        {
          type: 'text',
          text:
            'IM bridge answered 502 to POST /api/internal/imbridge/send: wechat upstream ' +
            'timeout; nothing was sent — retry in a moment, or give the answer in your reply instead',
        },
      ],
      isError: true,
    })
  })

  test('a wrong shared secret is refused by the bridge and reported', async () => {
    await using im = await startIm({ bridgeSecret: 'wrong' })
    const result = await im.mcp.call('send_message', { text: 'hi' })
    expect(result.isError).toBe(true)
    expect(textOf(result)).toStartWith(
      'IM bridge answered 401 to POST /api/internal/imbridge/send: {"error":"unauthorized"}',
    )
    expect(textOf(result)).not.toContain('wrong')
    expect(im.bridge.sent).toEqual([])
  })
})
