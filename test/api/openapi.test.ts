import SwaggerParser from '@apidevtools/swagger-parser'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startTestBroker, type TestBroker } from '../helpers/broker.ts'
import { databases } from '../helpers/databases.ts'

const KEY = 'key-openapi-aaaaaaaaaaaaaaaaaaaa'
/** Routes that take no credentials (/metrics does, unless CCBROKER_METRICS_PUBLIC). */
const OPEN = new Set(['/healthz', '/readyz'])
const SSE_ROUTES = [
  'GET /v1/sessions/{id}/events/stream',
  'GET /v1/sessions/{id}/worker/events/stream',
  'POST /api/turns',
  'GET /api/turns/{id}/events',
]
const expectedSecurity = (path: string) =>
  path.startsWith('/v1/sessions/{id}/worker')
    ? [{ workerToken: [] }]
    : OPEN.has(path)
      ? []
      : [{ apiKey: [] }]

describe('OpenAPI document and /docs', () => {
  const [db] = databases()
  let b: TestBroker
  let spec: any
  let sid: string
  let workerJwt: string
  beforeAll(async () => {
    b = await startTestBroker({ db: db!, env: { CCBROKER_API_KEYS: KEY } })
    const res = await fetch(`${b.url}/docs/json`)
    expect(res.status).toBe(200)
    spec = await res.json()
    const auth = { authorization: `Bearer ${KEY}` }
    sid = (await b.api('POST', '/v1/sessions', { workspace_id: 'ws-doc' }, auth)).body.session.id
    workerJwt = (await b.api('POST', `/v1/sessions/${sid}/bridge`, undefined, auth)).body.worker_jwt
  })
  afterAll(() => b.stop())

  const operations = () =>
    Object.entries<Record<string, any>>(spec.paths).flatMap(([path, ops]) =>
      Object.entries(ops).map(([method, op]) => ({
        route: `${method.toUpperCase()} ${path}`,
        method: method.toUpperCase(),
        path,
        op,
      })),
    )

  /** Status of a call, closing an event stream as soon as it answers. */
  const status = async (method: string, path: string, init: RequestInit = {}) => {
    const ac = new AbortController()
    const res = await fetch(b.url + path, { method, signal: ac.signal, ...init })
    ac.abort()
    return res.status
  }

  test('GET /docs/json passes swagger-parser validate() as OpenAPI 3.1; declared 3.0 it would not', async () => {
    expect(spec.openapi).toStartWith('3.1.')
    expect(await SwaggerParser.validate(structuredClone(spec))).toBeDefined()
    // Its schemas use 3.1 keywords (`type: "null"`, `const`): the validator does check them.
    await expect(
      SwaggerParser.validate({ ...structuredClone(spec), openapi: '3.0.3' }),
    ).rejects.toThrow(/Swagger schema validation failed/)
  })

  test('every operation has a summary, tags and a description on every response', () => {
    const lacking = operations().flatMap(({ route, op }) => [
      ...(typeof op.summary === 'string' && op.summary.length > 10 ? [] : [`${route}: summary`]),
      ...(op.tags?.length > 0 ? [] : [`${route}: tags`]),
      ...Object.entries<any>(op.responses ?? {})
        .filter(([, r]) => !(typeof r.description === 'string' && r.description.length > 0))
        .map(([s]) => `${route} ${s}: description`),
    ])
    expect(lacking).toEqual([])
    expect(operations().length).toBeGreaterThanOrEqual(26)
  })

  test('both schemes are declared; worker routes take the worker JWT, /healthz nothing, every other route an API key', () => {
    expect(spec.components.securitySchemes).toEqual({
      apiKey: {
        type: 'http',
        scheme: 'bearer',
        description: expect.stringContaining('Required only when keys are configured'),
      },
      workerToken: {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'JWT',
        description: expect.stringContaining('POST /v1/sessions/{id}/bridge'),
      },
    })
    const documented = Object.fromEntries(operations().map(({ route, op }) => [route, op.security]))
    const expected = Object.fromEntries(
      operations().map(({ route, path }) => [route, expectedSecurity(path)]),
    )
    expect(documented).toEqual(expected)
    expect(documented['GET /healthz']).toEqual([])
    expect(documented['PUT /v1/sessions/{id}/worker']).toEqual([{ workerToken: [] }])
  })

  test('the documented security is what the broker enforces, with and without credentials', async () => {
    const enforced: Record<string, { bare: boolean; apiKey: boolean; workerToken: boolean }> = {}
    const expected: typeof enforced = {}
    for (const { route, method, path, op } of operations()) {
      // Only worker routes get the real session: nothing here may change it (a bridge would).
      const url = path.startsWith('/v1/sessions/{id}/worker')
        ? path.replace('{id}', sid)
        : path.replaceAll(/\{[^}]+\}/g, 'cse_unknown')
      const as = async (token: string | null) =>
        (await status(method, url, {
          headers: {
            ...(op.requestBody ? { 'content-type': 'application/json' } : {}),
            ...(token ? { authorization: `Bearer ${token}` } : {}),
          },
          body: op.requestBody ? '{}' : undefined,
        })) === 401
      enforced[route] = {
        bare: await as(null),
        apiKey: await as(KEY),
        workerToken: await as(workerJwt),
      }
      const scheme = Object.keys(op.security[0] ?? {})[0]
      expected[route] = {
        bare: scheme !== undefined,
        apiKey: scheme === 'workerToken',
        workerToken: scheme === 'apiKey',
      }
    }
    expect(enforced).toEqual(expected)
  })

  test('request bodies are application/json only, and the broker refuses text/plain with 415', async () => {
    const withBody = operations().filter(({ op }) => op.requestBody)
    expect(withBody.map(({ route, op }) => [route, Object.keys(op.requestBody.content)])).toEqual(
      withBody.map(({ route }) => [route, ['application/json']]),
    )
    expect(withBody.length).toBeGreaterThanOrEqual(10)
    for (const { op } of withBody)
      expect(op.requestBody.content['application/json'].schema.type).toBe('object')
    const refused = []
    for (const { route, method, path, op } of withBody) {
      const token = op.security[0]?.workerToken ? workerJwt : KEY
      const url = path.replaceAll('{id}', sid).replaceAll(/\{[^}]+\}/g, 'x')
      refused.push([
        route,
        await status(method, url, {
          headers: { 'content-type': 'text/plain', authorization: `Bearer ${token}` },
          body: '{}',
        }),
      ])
    }
    expect(refused).toEqual(withBody.map(({ route }) => [route, 415]))
  })

  test('SSE routes answer text/event-stream frames whose data is described; errors everywhere are JSON {error}', () => {
    const streams = operations().filter(({ op }) =>
      Object.values<any>(op.responses).some((r) => r.content?.['text/event-stream']),
    )
    expect(streams.map(({ route }) => route).sort()).toEqual([...SSE_ROUTES].sort())
    for (const { route, op } of streams) {
      const ok = op.responses['200']
      expect({ route, types: Object.keys(ok.content) }).toEqual({
        route,
        types: ['text/event-stream'],
      })
      const frame = ok.content['text/event-stream'].schema
      expect(frame.type).toBe('string')
      expect(frame.description).toContain('`id: <sequence_num>`')
      expect(frame.description).toContain('`data: <JSON on one line>`')
      expect(frame['x-sse-data']).toMatchObject({
        type: 'object',
        properties: { event_id: { type: 'string' }, sequence_num: { type: 'integer' } },
      })
    }
    const worker = streams.find(({ route }) => route.includes('/worker/'))!.op
    expect(worker.responses['200'].content['text/event-stream'].schema.description).toContain(
      '`event: client_event`',
    )
    const errorBodies = operations().flatMap(({ route, op }) =>
      Object.entries<any>(op.responses)
        .filter(([s]) => Number(s) >= 400)
        .map(([s, r]) => [`${route} ${s}`, r.content]),
    )
    expect(errorBodies.length).toBeGreaterThan(80)
    expect(Object.fromEntries(errorBodies)).toEqual(
      Object.fromEntries(
        errorBodies.map(([name]) => [
          name,
          {
            'application/json': {
              schema: expect.objectContaining({
                type: 'object',
                required: ['error'],
                properties: { error: expect.objectContaining({ type: 'string' }) },
              }),
            },
          },
        ]),
      ),
    )
  })

  test('GET /docs is HTML with a policy allowing only this origin, and no inline script', async () => {
    const res = await fetch(`${b.url}/docs`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8')
    const policy = Object.fromEntries(
      res.headers
        .get('content-security-policy')!
        .split(';')
        .map((d) => d.trim().split(/\s+/))
        .map(([name, ...sources]) => [name, sources]),
    )
    expect(policy).toEqual({
      'default-src': ["'none'"],
      'script-src': ["'self'"],
      'style-src': ["'self'"],
      'img-src': ["'self'", 'data:'],
      'connect-src': ["'self'"],
      'form-action': ["'self'"],
      'base-uri': ["'none'"],
      'frame-ancestors': ["'none'"],
    })
    const html = await res.text()
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)]
    expect(scripts.length).toBe(2)
    for (const [, attrs, inline] of scripts) {
      expect(attrs).toMatch(/\bsrc="/)
      expect(inline!.trim()).toBe('')
    }
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i)
  })

  test('every file the page references comes from the broker, Swagger UI as npm ships it, pointed at /docs/json', async () => {
    const html = await (await fetch(`${b.url}/docs`)).text()
    const refs = [...html.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)
    expect(refs.sort()).toEqual([
      '/docs/init.js',
      '/docs/swagger-ui-bundle.js',
      '/docs/swagger-ui.css',
    ])
    const served: Record<string, { origin: string; status: number; type: string | null }> = {}
    const bodies: Record<string, Uint8Array> = {}
    for (const ref of refs) {
      const url = new URL(ref, `${b.url}/docs`)
      const res = await fetch(url)
      bodies[ref] = new Uint8Array(await res.arrayBuffer())
      served[ref] = {
        origin: url.origin,
        status: res.status,
        type: res.headers.get('content-type'),
      }
    }
    const js = 'text/javascript; charset=utf-8'
    expect(served).toEqual({
      '/docs/init.js': { origin: b.url, status: 200, type: js },
      '/docs/swagger-ui-bundle.js': { origin: b.url, status: 200, type: js },
      '/docs/swagger-ui.css': { origin: b.url, status: 200, type: 'text/css; charset=utf-8' },
    })
    for (const file of ['swagger-ui-bundle.js', 'swagger-ui.css']) {
      const npm = await Bun.file(
        Bun.resolveSync(`swagger-ui-dist/${file}`, import.meta.dir),
      ).bytes()
      expect({ file, same: Buffer.from(bodies[`/docs/${file}`]!).equals(npm) }).toEqual({
        file,
        same: true,
      })
    }
    const init = new TextDecoder().decode(bodies['/docs/init.js'])
    expect(init).toContain("url: '/docs/json'")
    expect(init).toContain('validatorUrl: null')
  })
})
