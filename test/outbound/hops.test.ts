// Redirects as the outbound guard follows them (src/outbound/hops.ts): every hop is checked
// like the first, and method, body and credentials change as browsers change them.
import { describe, expect, test } from 'bun:test'
import { createOutboundFetch } from '../../src/outbound/guard.ts'
import {
  failureOf,
  refusal,
  startInternalServer,
  startPublicServer,
  tableLookup,
} from '../helpers/outbound.ts'

const guard = createOutboundFetch

describe('redirects', () => {
  const internalTargets = [
    ['its address', (port: number) => `http://127.0.0.1:${port}/secret`],
    ['a decimal spelling', (port: number) => `http://2130706433:${port}/secret`],
    ['IPv4-mapped IPv6', (port: number) => `http://[::ffff:7f00:1]:${port}/secret`],
    ['a name resolving to it', (port: number) => `http://internal.test:${port}/secret`],
  ] as const

  test.concurrent.each(internalTargets)(
    'public → internal (%s) is refused; the internal server sees nothing',
    async (_label, target) => {
      await using internal = startInternalServer()
      await using pub = startPublicServer()
      const { lookup } = tableLookup({ 'internal.test': ['127.0.0.1'] })
      const url = `${pub.url}/to?url=${encodeURIComponent(target(internal.port))}`
      const failure = await failureOf(guard({ allow: ['127.0.0.2/32'], lookup })(url))
      expect(failure).toEqual(refusal(`${pub.url}/to?…`))
      expect({ public: pub.requests.length, internal: internal.requests }).toEqual({
        public: 1,
        internal: [],
      })
    },
  )

  test.concurrent('a redirect to a file: URL is refused', async () => {
    await using pub = startPublicServer()
    const url = `${pub.url}/to?url=${encodeURIComponent('file:///etc/passwd')}`
    expect(await failureOf(guard({ allow: ['127.0.0.2/32'] })(url))).toEqual({
      name: 'OutboundRefusedError',
      message:
        `could not fetch ${pub.url}/to?…: it redirects to the file URL; ` +
        'only http: and https: URLs are fetched',
      code: undefined,
    })
  })

  test.concurrent('a chain of 3 hops ending at the internal server is refused', async () => {
    await using internal = startInternalServer()
    await using pub = startPublicServer()
    const target = encodeURIComponent(`${internal.url}/secret`)
    const failure = await failureOf(
      guard({ allow: ['127.0.0.2/32'] })(`${pub.url}/chain/3?url=${target}`),
    )
    expect(failure).toEqual(refusal(`${pub.url}/chain/3?…`))
    expect(pub.requests.map((r) => r.path.split('?')[0])).toEqual([
      '/chain/3',
      '/chain/2',
      '/chain/1',
    ])
    expect(internal.requests).toEqual([])
  })

  test.concurrent('5 redirects are followed, the 6th is an error', async () => {
    await using pub = startPublicServer()
    const allowed = guard({ allow: ['127.0.0.2/32'] })
    const res = await allowed(`${pub.url}/hops/5`)
    expect({ body: await res.text(), url: res.url, redirected: res.redirected }).toEqual({
      body: 'arrived',
      url: `${pub.url}/hops/0`,
      redirected: true,
    })
    expect(pub.requests.length).toBe(6)
    expect(await failureOf(allowed(`${pub.url}/hops/6`))).toEqual({
      name: 'UpstreamError',
      message: `${pub.url}/hops/6 redirected more than 5 times`,
      code: undefined,
    })
    expect(pub.requests.length).toBe(6 + 6)
    const strict = guard({ allow: ['127.0.0.2/32'], maxRedirects: 0 })
    expect((await failureOf(strict(`${pub.url}/hops/1`))).message).toBe(
      `${pub.url}/hops/1 redirected more than 0 times`,
    )
  })

  test.concurrent(
    'a redirect without Location is an error; redirect: manual returns it',
    async () => {
      await using pub = startPublicServer()
      const allowed = guard({ allow: ['127.0.0.2/32'] })
      expect(await failureOf(allowed(`${pub.url}/no-location`))).toEqual({
        name: 'UpstreamError',
        message: `${pub.url}/no-location answered 302 without a Location header`,
        code: undefined,
      })
      const res = await allowed(`${pub.url}/hops/1`, { redirect: 'manual' })
      expect({ status: res.status, location: res.headers.get('location') }).toEqual({
        status: 302,
        location: '/hops/0',
      })
    },
  )

  test.concurrent.each([
    [303, 'POST', { method: 'GET', body: '', contentType: null }],
    [302, 'POST', { method: 'GET', body: '', contentType: null }],
    [301, 'POST', { method: 'GET', body: '', contentType: null }],
    [307, 'POST', { method: 'POST', body: '{"a":1}', contentType: 'application/json' }],
    [308, 'PUT', { method: 'PUT', body: '{"a":1}', contentType: 'application/json' }],
    [302, 'PUT', { method: 'PUT', body: '{"a":1}', contentType: 'application/json' }],
  ])('%d after %s → %o', async (status, method, expected) => {
    await using pub = startPublicServer()
    const res = await guard({ allow: ['127.0.0.2/32'] })(`${pub.url}/status/${status}?to=/echo`, {
      method,
      body: '{"a":1}',
      headers: { 'content-type': 'application/json', authorization: 'Bearer t' },
    })
    expect(await res.json()).toEqual({ ...expected, authorization: 'Bearer t' })
  })

  test.concurrent('credentials are not sent to another origin', async () => {
    await using pub = startPublicServer()
    const { lookup } = tableLookup({ 'pub.test': ['127.0.0.2'] })
    const other = encodeURIComponent(`http://pub.test:${pub.port}/echo`)
    const res = await guard({ allow: ['127.0.0.2/32'], lookup })(`${pub.url}/to?url=${other}`, {
      headers: { authorization: 'Bearer t' },
    })
    expect(await res.json()).toEqual({
      method: 'GET',
      body: '',
      contentType: null,
      authorization: null,
    })
  })
})
