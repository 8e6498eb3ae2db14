import { describe, expect, test } from 'bun:test'
import { OutboundRefusedError, UpstreamError } from '../../src/errors.ts'
import { createOutboundFetch, type FetchLike } from '../../src/outbound/guard.ts'
import {
  failureOf,
  refusal,
  selfSignedCert,
  startHttpsServer,
  startInternalServer,
  startPublicServer,
  tableLookup,
} from '../helpers/outbound.ts'

const guard = createOutboundFetch

describe('refused addresses', () => {
  // [spelling, URL (PORT = the internal server's), the URL the message shows]
  const literals = [
    ['decimal', 'http://2130706433:PORT/secret?token=x', 'http://127.0.0.1:PORT/secret?…'],
    ['octal', 'http://0177.0.0.1:PORT/secret', 'http://127.0.0.1:PORT/secret'],
    ['hex', 'http://0x7f000001:PORT/secret', 'http://127.0.0.1:PORT/secret'],
    ['short', 'http://127.1:PORT/secret', 'http://127.0.0.1:PORT/secret'],
    ['dotted', 'http://127.0.0.1:PORT/secret', 'http://127.0.0.1:PORT/secret'],
    [
      'mapped dotted',
      'http://[::ffff:127.0.0.1]:PORT/secret',
      'http://[::ffff:7f00:1]:PORT/secret',
    ],
    ['mapped hex', 'http://[::ffff:7f00:1]:PORT/secret', 'http://[::ffff:7f00:1]:PORT/secret'],
    ['IPv4-compatible', 'http://[::127.0.0.1]:PORT/secret', 'http://[::7f00:1]:PORT/secret'],
    ['IPv6 loopback', 'http://[::1]:PORT/secret', 'http://[::1]:PORT/secret'],
    ['zero', 'http://0:PORT/secret', 'http://0.0.0.0:PORT/secret'],
    ['NAT64', 'http://[64:ff9b::7f00:1]:PORT/secret', 'http://[64:ff9b::7f00:1]:PORT/secret'],
    ['6to4', 'http://[2002:7f00:1::]:PORT/secret', 'http://[2002:7f00:1::]:PORT/secret'],
    ['localhost', 'http://localhost:PORT/secret', 'http://localhost:PORT/secret'],
  ] as const

  test.concurrent.each(literals)(
    '%s → the one refusal, the internal server sees nothing',
    async (_spelling, url, shown) => {
      await using internal = startInternalServer()
      const port = String(internal.port)
      const failure = await failureOf(guard()(url.replace('PORT', port)))
      expect(failure).toEqual(refusal(shown.replace('PORT', port)))
      expect(internal.requests).toEqual([])
    },
  )

  test.concurrent.each(literals.filter(([s]) => !/IPv6|compatible|NAT64|6to4/.test(s)))(
    'contrast: %s reaches the internal server once loopback is allowed',
    async (_spelling, url) => {
      await using internal = startInternalServer()
      // 0.0.0.0 too: on Linux it reaches this host, which is why it is refused.
      const allowed = guard({ allow: ['127.0.0.1/32', '::1/128', '0.0.0.0/32'] })
      const res = await allowed(url.replace('PORT', String(internal.port)))
      expect({ status: res.status, body: await res.text() }).toEqual({
        status: 200,
        body: 'internal secret',
      })
      expect(internal.requests.map((r) => r.path)).toEqual([
        url.includes('token') ? '/secret?token=x' : '/secret',
      ])
    },
  )

  test.concurrent.each([
    ['loopback', ['127.0.0.1']],
    ['one public, one loopback', ['93.184.216.34', '127.0.0.1']],
    ['IPv4-mapped loopback', ['::ffff:127.0.0.1']],
    ['IPv6 loopback', ['::1']],
    ['private 10/8', ['10.1.2.3']],
    ['private 172.16/12', ['172.20.0.1']],
    ['private 192.168/16', ['192.168.1.1']],
    ['unique local', ['fd00::2']],
    ['link-local (cloud metadata)', ['169.254.169.254']],
    ['IPv6 link-local', ['fe80::1']],
    ['CGNAT', ['100.64.0.1']],
    ['unspecified', ['0.0.0.0']],
    ['multicast', ['224.0.0.1']],
    ['broadcast', ['255.255.255.255']],
    ['reserved', ['240.0.0.1']],
    ['no address at all', []],
  ])('a name that resolves to %s → the one refusal', async (_label, addresses) => {
    await using internal = startInternalServer()
    const { lookup, calls } = tableLookup({ 'files.test': addresses })
    const url = `http://files.test:${internal.port}/secret`
    expect(await failureOf(guard({ lookup })(url))).toEqual(refusal(url))
    expect({ calls, seen: internal.requests }).toEqual({ calls: ['files.test'], seen: [] })
  })

  test.concurrent('the refusal is an UpstreamError (502), as callers expect', async () => {
    const err = await guard()('http://[::1]/').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(OutboundRefusedError)
    expect(err).toBeInstanceOf(UpstreamError)
    expect((err as UpstreamError).status).toBe(502)
  })

  test.concurrent('an unresolvable name → the one refusal, its cause kept', async () => {
    const { lookup } = tableLookup({})
    const url = 'http://nowhere.test/x'
    expect(await failureOf(guard({ lookup })(url))).toEqual({
      ...refusal(url),
      code: 'ENOTFOUND',
    })
  })

  test.concurrent.each([
    ['closed port', 'ECONNREFUSED'],
    ['connection reset', 'ECONNRESET'],
  ])('%s on an allowed address → the same message as a refused address', async (kind, code) => {
    const listener = Bun.listen({
      hostname: '127.0.0.2',
      port: 0,
      socket: { open: (socket) => void socket.terminate(), data() {} },
    })
    const port = listener.port
    if (kind === 'closed port') listener.stop(true)
    try {
      const url = `http://127.0.0.2:${port}/file`
      expect(await failureOf(guard({ allow: ['127.0.0.2/32'] })(url))).toEqual({
        ...refusal(url),
        code,
      })
      expect(await failureOf(guard()(url))).toEqual(refusal(url))
    } finally {
      listener.stop(true)
    }
  })

  test.concurrent.each([
    ['file:///etc/passwd', 'could not fetch the file URL: only http: and https: URLs are fetched'],
    ['ftp://files.test/a', 'could not fetch the ftp URL: only http: and https: URLs are fetched'],
    ['not a url', 'could not fetch the URL: it is not a valid URL'],
  ])('%s → refused before any lookup', async (url, message) => {
    const { lookup, calls } = tableLookup({})
    expect(await failureOf(guard({ lookup })(url))).toEqual({
      name: 'OutboundRefusedError',
      message,
      code: url === 'not a url' ? 'ERR_INVALID_URL' : undefined,
    })
    expect(calls).toEqual([])
  })
})

describe('allowed fetches', () => {
  test.concurrent('a public address is fetched; the result is FetchLike', async () => {
    await using pub = startPublicServer()
    const fetchLike: FetchLike = guard({ allow: ['127.0.0.2/32'] })
    const res = await fetchLike(`${pub.url}/file`)
    expect({ status: res.status, body: await res.text(), url: res.url }).toEqual({
      status: 200,
      body: 'public bytes',
      url: `${pub.url}/file`,
    })
    expect(pub.requests).toEqual([{ method: 'GET', path: '/file', host: `127.0.0.2:${pub.port}` }])
  })

  test.concurrent('an allowed name is connected to the address it resolved to, once', async () => {
    await using internal = startInternalServer()
    // files.test exists nowhere but in this lookup: a second resolution could not succeed.
    const { lookup, calls } = tableLookup({ 'files.test': ['127.0.0.1'] })
    const url = `http://files.test:${internal.port}/report.pdf#page=2`
    const res = await guard({ allow: ['FILES.test'], lookup })(url)
    expect({ body: await res.text(), url: res.url, calls, seen: internal.requests }).toEqual({
      body: 'internal secret',
      url: `http://files.test:${internal.port}/report.pdf`,
      calls: ['files.test'],
      seen: [{ method: 'GET', path: '/report.pdf', host: `files.test:${internal.port}` }],
    })
  })

  test.concurrent('*.corp.test allows names below it, not corp.test itself', async () => {
    await using internal = startInternalServer()
    const { lookup } = tableLookup({ 'a.b.corp.test': ['127.0.0.1'], 'corp.test': ['127.0.0.1'] })
    const allowed = guard({ allow: ['*.corp.test'], lookup })
    const res = await allowed(`http://a.b.corp.test:${internal.port}/x`)
    expect(await res.text()).toBe('internal secret')
    const bare = `http://corp.test:${internal.port}/x`
    expect(await failureOf(allowed(bare))).toEqual(refusal(bare))
    expect(internal.requests.map((r) => r.host)).toEqual([`a.b.corp.test:${internal.port}`])
  })

  test.concurrent('a name with one refused address among allowed ones is refused', async () => {
    await using pub = startPublicServer()
    const { lookup } = tableLookup({ 'pub.test': ['127.0.0.2', '127.0.0.1'] })
    const url = `http://pub.test:${pub.port}/file`
    expect(await failureOf(guard({ allow: ['127.0.0.2/32'], lookup })(url))).toEqual(refusal(url))
    expect(pub.requests).toEqual([])
  })

  test.concurrent(
    'an address a URL cannot hold (IPv6 zone) is refused, not dialled by name',
    async () => {
      const { lookup, calls } = tableLookup({ 'link.test': ['fe80::1%lo'] })
      const url = 'http://link.test/x'
      const failure = await failureOf(guard({ allow: ['link.test'], lookup })(url))
      expect({ failure, calls }).toEqual({ failure: refusal(url), calls: ['link.test'] })
    },
  )

  test.concurrent('an address that refuses the connection gives way to the next', async () => {
    await using pub = startPublicServer()
    const { lookup } = tableLookup({ 'pub.test': ['127.0.0.3', '127.0.0.2'] })
    const allowed = guard({ allow: ['127.0.0.2/32', '127.0.0.3/32'], lookup })
    const res = await allowed(`http://pub.test:${pub.port}/file`)
    expect(await res.text()).toBe('public bytes')
    expect(pub.requests.map((r) => r.host)).toEqual([`pub.test:${pub.port}`])
  })
})

describe('https', () => {
  test('is pinned to the checked address with SNI and certificate for the name', async () => {
    const tls = await selfSignedCert('files.test')
    await using server = await startHttpsServer(tls)
    const { lookup, calls } = tableLookup({
      'files.test': ['127.0.0.1'],
      'other.test': ['127.0.0.1'],
    })
    const pinned = guard({ allow: ['files.test', 'other.test'], lookup })
    const url = `https://files.test:${server.port}/doc`
    const res = await pinned(url, { tls: { ca: tls.cert } })
    expect({ body: await res.text(), url: res.url, calls, seen: server.requests }).toEqual({
      body: 'tls bytes',
      url,
      calls: ['files.test'],
      seen: [{ sni: 'files.test', host: `files.test:${server.port}`, path: '/doc' }],
    })

    // Contrast: the same address under a name the certificate is not for, or no trusted CA.
    const other = `https://other.test:${server.port}/doc`
    expect(await failureOf(pinned(other, { tls: { ca: tls.cert } }))).toEqual({
      ...refusal(other),
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    })
    expect(await failureOf(pinned(url))).toEqual({
      ...refusal(url),
      code: 'DEPTH_ZERO_SELF_SIGNED_CERT',
    })
    expect(server.requests.length).toBe(1)
  })
})

describe("the caller's signal", () => {
  test.concurrent('aborting during the lookup rejects with its reason', async () => {
    const controller = new AbortController()
    const resolving = Promise.withResolvers<string>()
    const lookup = (hostname: string) => {
      resolving.resolve(hostname)
      return new Promise<string[]>(() => {})
    }
    const pending = guard({ lookup })('http://files.test/x', { signal: controller.signal })
    controller.abort(new Error(`stopped while resolving ${await resolving.promise}`))
    expect(await failureOf(pending)).toEqual({
      name: 'Error',
      message: 'stopped while resolving files.test',
      code: undefined,
    })
  })

  test.concurrent('aborting while the server is answering rejects with its reason', async () => {
    await using pub = startPublicServer()
    const controller = new AbortController()
    const arrived = pub.reached('/hang')
    const pending = guard({ allow: ['127.0.0.2/32'] })(`${pub.url}/hang`, {
      signal: controller.signal,
    })
    await arrived
    controller.abort(new Error('the caller gave up'))
    expect(await failureOf(pending)).toEqual({
      name: 'Error',
      message: 'the caller gave up',
      code: undefined,
    })
  })
})
