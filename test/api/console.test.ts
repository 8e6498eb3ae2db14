import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startTestBroker, type TestBroker } from '../../src/testing/test-broker.ts'

const POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

describe('GET /console', () => {
  let b: TestBroker
  beforeAll(async () => {
    b = await startTestBroker({ worker: false })
  })
  afterAll(() => b.stop())

  test('the page and every file it references come from the broker, each under a policy allowing only this origin', async () => {
    const res = await fetch(`${b.url}/console`)
    const html = await res.text()
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)
    expect(refs).toEqual(['/console/icon.svg', '/console/console.css', '/console/console.js', '#/'])
    const files = [res, ...(await Promise.all(refs.slice(0, 3).map((r) => fetch(b.url + r))))]
    expect(
      files.map((f) => ({
        path: new URL(f.url).pathname,
        status: f.status,
        type: f.headers.get('content-type'),
        policy: f.headers.get('content-security-policy'),
        nosniff: f.headers.get('x-content-type-options'),
      })),
    ).toEqual(
      (
        [
          ['/console', 'text/html; charset=utf-8'],
          ['/console/icon.svg', 'image/svg+xml'],
          ['/console/console.css', 'text/css; charset=utf-8'],
          ['/console/console.js', 'text/javascript; charset=utf-8'],
        ] as const
      ).map(([path, type]) => ({ path, status: 200, type, policy: POLICY, nosniff: 'nosniff' })),
    )
    // No inline script, style or handler for the policy to have to allow.
    expect(html.match(/<script[^>]*>/g)).toEqual([
      '<script type="module" src="/console/console.js">',
    ])
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i)
    // The page carries no data: the sessions come from the API, with the key.
    expect(html).not.toContain('cse_')
  })

  test('/console/ is the same page; other paths under it are 404', async () => {
    const [a, c] = await Promise.all([fetch(`${b.url}/console`), fetch(`${b.url}/console/`)])
    expect(await c.text()).toBe(await a.text())
    expect((await fetch(`${b.url}/console/nope.js`)).status).toBe(404)
  })
})
