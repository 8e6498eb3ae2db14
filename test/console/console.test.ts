import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Browser, Page } from 'playwright-core'
import { startTestBroker, type TestBroker } from '../../src/testing/test-broker.ts'
import { chromiumBin, launchBrowser, screenshot } from '../helpers/browser.ts'
import { startTcpProxy } from '../helpers/tcp-proxy.ts'
import { until } from '../helpers/until.ts'

const KEY = 'console-test-key-0123456789'
const chromium = chromiumBin()

// Both worker transports: partial text reaches the page the same way from either.
describe.skipIf(!chromium).each(['stdio', 'ccr'] as const)(
  'the console in Chromium, %s worker',
  (transport) => {
    const shot = (page: Page, name: string) => screenshot(page, `console/${transport}`, name)
    let b: TestBroker
    let browser: Browser & AsyncDisposable

    beforeAll(async () => {
      b = await startTestBroker({
        transport,
        config: { CCBROKER_API_KEYS: KEY, CCBROKER_PERMISSION_POLICY: 'ask' },
        worker: {
          reply: (message) => {
            if (message === 'write slowly')
              return {
                steps: [
                  {
                    tool: 'Read',
                    input: { file_path: 'missing.txt' },
                    output: 'ENOENT',
                    isError: true,
                  },
                  { stream: 'The answer is **forty-two**, written slowly', hold: true },
                ],
                reply: 'Done writing.',
              }
            if (message === 'clean the build')
              return {
                steps: [{ permission: 'Bash', input: { command: 'rm -rf build' } }],
                reply: 'Cleaned.',
              }
            if (message === 'drop me')
              return {
                steps: [{ text: 'Before the drop.' }, { hold: true }],
                reply: 'After the drop.',
              }
            if (message === 'reload me')
              return {
                steps: [{ text: 'Before the reload.' }, { hold: true }],
                reply: 'After the reload.',
              }
            if (message === 'wait for ever') return { steps: [{ hold: true }] }
            if (message === 'be hostile')
              return [
                '# Report',
                'Safe [docs](https://example.com/docs) and [bad](javascript:alert(1)).',
                'A snake_case_name stays, _this_ is emphasis.',
                '<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script>',
                '![pixel](https://tracker.example/p.gif)',
                '```',
                '<b>not bold</b>',
                '```',
              ].join('\n')
            return `echo: ${message}`
          },
        },
      })
      browser = await launchBrowser(chromium!)
    })
    afterAll(async () => {
      await browser?.close()
      await b?.stop()
    })

    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(b.url + path, {
        method,
        headers: {
          authorization: `Bearer ${KEY}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      return (await res.json()) as any
    }
    const newSession = async (workspace: string, title: string) =>
      (await api('POST', '/v1/sessions', { workspace_id: workspace, title })).session.id as string

    // Uncaught errors, failed loads and policy violations of a page: a test ends by checking them.
    const errorsOf = new WeakMap<Page, string[]>()
    async function newPage(): Promise<Page> {
      const page = await browser.newPage()
      const errors: string[] = []
      errorsOf.set(page, errors)
      page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`))
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(`console: ${m.text()}`)
      })
      return page
    }
    const pageErrors = (page: Page) => errorsOf.get(page)

    async function logIn(page: Page, url = b.url) {
      await page.goto(`${url}/console`)
      await page.getByLabel('API key').fill(KEY)
      await page.getByRole('button', { name: 'Log in' }).click()
      await page.getByRole('heading', { name: 'Sessions' }).waitFor()
    }

    /** Opens a session and waits until the page shows every stored event of it. */
    async function openSession(page: Page, id: string) {
      await page.goto(`${b.url}/console#/sessions/${id}`)
      await caughtUp(page, id)
    }

    /** The page has read the session's log up to its last stored event. */
    async function caughtUp(page: Page, id: string) {
      const { data } = await api('GET', `/v1/sessions/${id}/events?limit=1000`)
      const last: number = data.at(-1)?.sequence_num ?? 0
      await until(
        async () =>
          Number(
            await page
              .locator('.timeline')
              .evaluate((el: any) => el.dataset.cursor ?? '0')
              .catch(() => '0'),
          ) >= last,
        { what: `the page to read the log up to seq ${last}` },
      )
    }

    /** The seq numbers the timeline shows, in order. */
    const shownSeqs = (page: Page) =>
      page
        .locator('.timeline [data-seq]')
        .evaluateAll((els: any[]) => els.map((el) => Number(el.dataset.seq)))

    test('a page with no key sees nothing; a wrong key is refused and nothing is stored', async () => {
      const id = await newSession('ws-secret', 'Secret plans')
      const page = await newPage()
      const res = await page.goto(`${b.url}/console`)
      expect(res?.status()).toBe(200)
      const csp = res?.headers()['content-security-policy'] ?? ''
      expect(csp).toContain("default-src 'none'")
      expect(csp).toContain("script-src 'self'")
      expect(csp).not.toContain('unsafe-inline')
      await page.getByLabel('API key').waitFor()
      expect(await page.locator('table').count()).toBe(0)
      // The page's own origin, without a key, is refused by the API.
      expect(await page.evaluate(async () => (await fetch('/v1/overview/sessions')).status)).toBe(
        401,
      )
      await page.getByLabel('API key').fill('not-the-key-at-all-0000')
      await page.getByRole('button', { name: 'Log in' }).click()
      await page.getByText('The broker refused this key.').waitFor()
      expect(await page.evaluate(() => sessionStorage.length)).toBe(0)
      expect(await page.evaluate('document.cookie')).toBe('')
      expect(await page.content()).not.toContain(id)
      expect(await page.content()).not.toContain('Secret plans')
      await shot(page, '01-no-key')
      await page.close()
      // The two refusals above, and nothing else.
      expect(pageErrors(page)).toEqual([
        'console: Failed to load resource: the server responded with a status of 401 (Unauthorized)',
        'console: Failed to load resource: the server responded with a status of 401 (Unauthorized)',
      ])
    })

    test('log in with a key: the sessions with id and title, filtered, searched and updating live', async () => {
      const release = await newSession('ws-console', 'Release notes')
      const other = await newSession('ws-other', 'Other work')
      await api('POST', '/api/v2/turns', {
        session_id: release,
        workspace_id: 'ws-console',
        user_message: 'hello',
      })
      const page = await newPage()
      await logIn(page)
      // The key lives in this tab's session storage, and no cookie was set.
      expect(await page.evaluate(() => Object.values(sessionStorage))).toEqual([KEY])
      expect((await page.context().cookies()).length).toBe(0)
      const row = (id: string) => page.locator(`tr[data-session="${id}"]`)
      await row(release).getByText('Release notes').waitFor()
      expect(await row(release).getByText(release).count()).toBe(1)
      await row(other).getByText('Other work').waitFor()
      // The turn's cost shows once it is done.
      await row(release).getByText('$0.0123').waitFor()
      expect(await row(release).locator('td').allTextContents()).toEqual([
        `Release notes ${release}`,
        'ws-console',
        'idle',
        expect.any(String),
        '—',
        '0',
        '$0.0123',
      ])

      // Live: a session created elsewhere appears without a reload.
      const later = await newSession('ws-console', 'Created later')
      await row(later).getByText('Created later').waitFor()

      await page.getByLabel('Workspace').fill('ws-other')
      await until(async () => (await page.locator('tbody tr').count()) === 1, {
        what: 'only ws-other listed',
      })
      await row(other).waitFor()
      await page.getByLabel('Workspace').fill('')
      await page.getByLabel('Search').fill('release')
      await until(async () => (await page.locator('tbody tr').count()) === 1, {
        what: 'only the search match listed',
      })
      await row(release).waitFor()
      await shot(page, '02-sessions')
      await page.close()
      expect(pageErrors(page)).toEqual([])
    })

    test('open a session, send a message, and watch the answer as it is written; a failed tool shows folded and highlighted', async () => {
      const id = await newSession('ws-console', 'Streaming')
      const page = await newPage()
      await logIn(page)
      await page.locator(`tr[data-session="${id}"] a`).click()
      await page.getByRole('heading', { name: 'Streaming' }).waitFor()
      const pause = b.worker!.pause(id)
      await page.getByLabel('Message').fill('write slowly')
      await page.getByRole('button', { name: 'Send' }).click()
      await pause.arrived
      // Mid-message: the partial text is on the page, rendered as Markdown, and the turn is open.
      const partial = page.locator('.msg.assistant.partial')
      await partial.getByText('written slowly').waitFor()
      expect(await partial.locator('strong').textContent()).toBe('forty-two')
      expect(await page.locator('.turn-end').count()).toBe(0)
      expect(await page.locator('article.msg.user').allTextContents()).toEqual(['Userwrite slowly'])
      expect(await page.getByRole('button', { name: 'Cancel', exact: true }).isEnabled()).toBe(true)
      const tool = page.locator('details.tool.failed')
      await tool.locator('summary').click()
      await tool.getByText('ENOENT').waitFor()
      expect(await tool.getByText('"file_path": "missing.txt"').count()).toBe(1)
      await shot(page, '03-partial-text')

      pause.release()
      const end = page.locator('.turn-end')
      await end.waitFor()
      expect(await end.textContent()).toMatch(
        /^Turn done · \$0\.0123 · 10 in \/ 5 out tokens · \d+\.\d s$/,
      )
      await page.getByText('Done writing.').waitFor()
      // The finished message took the partial one's place: the text is there once, not twice.
      expect(await page.locator('.msg.partial').count()).toBe(0)
      expect(await page.getByText('written slowly').count()).toBe(1)
      expect(await page.locator('details.tool.failed').count()).toBe(1)
      expect(await page.locator('.timeline > .error').count()).toBe(0)
      await shot(page, '04-turn-done')
      await page.close()
      expect(pageErrors(page)).toEqual([])
    })

    test('a permission request shows its input with Allow and Deny; Allow lets the turn finish, Deny refuses the tool', async () => {
      const id = await newSession('ws-console', 'Permissions')
      const page = await newPage()
      await logIn(page)
      await openSession(page, id)
      await page.getByLabel('Message').fill('clean the build')
      await page.getByRole('button', { name: 'Send' }).click()
      const card = page.getByRole('region', { name: 'Permission request: Bash' })
      await card.waitFor()
      expect(await card.getByText('"command": "rm -rf build"').count()).toBe(1)
      expect(await card.getByRole('button', { name: 'Deny' }).isEnabled()).toBe(true)
      await shot(page, '05-permission-request')
      await card.getByRole('button', { name: 'Allow' }).click()
      await card.getByText('Allowed (by caller)').waitFor()
      expect(await card.getByRole('button').count()).toBe(0)
      await page.getByText('Cleaned.').waitFor()
      expect(await page.locator('.turn-end').textContent()).toStartWith('Turn done')
      // The worker got the answer: its tool ran.
      const tool = page.locator('details.tool', { hasText: 'Bash' })
      await tool.locator('summary').click()
      await tool.getByText('fake Bash output').waitFor()
      await shot(page, '06-permission-allowed')

      // Deny: the worker is refused, and the page says so.
      await page.getByLabel('Message').fill('clean the build')
      await page.getByRole('button', { name: 'Send' }).click()
      const second = page.getByRole('region', { name: 'Permission request: Bash' }).nth(1)
      await second.getByRole('button', { name: 'Deny' }).click()
      await second.getByText('Denied (by caller)').waitFor()
      await until(async () => (await page.locator('.turn-end').count()) === 2, {
        what: 'the second turn to end',
      })
      expect(await page.locator('details.tool.failed', { hasText: 'Bash' }).count()).toBe(1)
      await page.close()
      expect(pageErrors(page)).toEqual([])
    })

    test('a reload mid-turn shows each event once, then the rest of the turn live', async () => {
      const id = await newSession('ws-console', 'Reload')
      const page = await newPage()
      await logIn(page)
      await openSession(page, id)
      const pause = b.worker!.pause(id)
      await page.getByLabel('Message').fill('reload me')
      await page.getByRole('button', { name: 'Send' }).click()
      await pause.arrived
      await page.getByText('Before the reload.').waitFor()
      const before = await shownSeqs(page)

      await page.reload()
      await caughtUp(page, id)
      await page.getByText('Before the reload.').waitFor()
      // The key survived the reload (session storage), and the page shows what it showed before.
      expect(await shownSeqs(page)).toEqual(before)
      expect(await page.locator('article.msg.user').count()).toBe(1)
      expect(await page.getByText('Before the reload.').count()).toBe(1)
      await shot(page, '07-after-reload')

      pause.release()
      await page.getByText('After the reload.').waitFor()
      await page.locator('.turn-end').waitFor()
      const after = await shownSeqs(page)
      expect(new Set(after).size).toBe(after.length)
      expect(after).toEqual([...after].sort((x, y) => x - y))
      expect(after.slice(0, before.length)).toEqual(before)
      expect(await page.getByText('After the reload.').count()).toBe(1)
      expect(await page.locator('.turn-end').count()).toBe(1)
      await shot(page, '08-reload-turn-done')
      await page.close()
      expect(pageErrors(page)).toEqual([])
    })

    test('a dropped connection resumes with Last-Event-ID: what happened meanwhile arrives, once', async () => {
      const id = await newSession('ws-console', 'Dropped')
      using proxy = startTcpProxy({ hostname: '127.0.0.1', port: Number(new URL(b.url).port) })
      const page = await newPage()
      const cursors: (string | null)[] = []
      page.on('request', (r) => {
        if (r.url().includes('/events/stream')) cursors.push(r.headers()['last-event-id'] ?? null)
      })
      await logIn(page, proxy.url)
      await page.goto(`${proxy.url}/console#/sessions/${id}`)
      await caughtUp(page, id)
      const pause = b.worker!.pause(id)
      await page.getByLabel('Message').fill('drop me')
      await page.getByRole('button', { name: 'Send' }).click()
      await pause.arrived
      await page.getByText('Before the drop.').waitFor()
      const before = await shownSeqs(page)
      const cursor = await page.locator('.timeline').evaluate((el: any) => el.dataset.cursor)

      proxy.cut()
      // The turn goes on while the page is cut off.
      pause.release()
      await page.getByText('After the drop.').waitFor()
      await page.locator('.turn-end').waitFor()
      expect(cursors).toEqual([null, cursor])
      const after = await shownSeqs(page)
      expect(new Set(after).size).toBe(after.length)
      expect(after).toEqual([...after].sort((x, y) => x - y))
      expect(after.slice(0, before.length)).toEqual(before)
      expect(await page.getByText('Before the drop.').count()).toBe(1)
      expect(await page.getByText('After the drop.').count()).toBe(1)
      // Everything stored after the cursor is on the page: no gap.
      const { data } = await api('GET', `/v1/sessions/${id}/events?limit=1000`)
      const shown = new Set(after)
      const drawn = ['user', 'assistant', 'turn_started', 'done']
      expect(
        data
          .filter((e: any) => drawn.includes(e.event_type) && !shown.has(e.sequence_num))
          .map((e: any) => e.event_type),
      ).toEqual([])
      await shot(page, '09-after-drop')
      await page.close()
      // The cut, as the browser saw it, and nothing else.
      expect(pageErrors(page)).toEqual([
        'console: Failed to load resource: net::ERR_INCOMPLETE_CHUNKED_ENCODING',
      ])
    })

    test('model output is rendered as Markdown and never as HTML: no markup, script or foreign load runs', async () => {
      const id = await newSession('ws-console', 'Hostile')
      const page = await newPage()
      const foreign: string[] = []
      page.on('request', (r) => {
        if (!r.url().startsWith(b.url)) foreign.push(r.url())
      })
      await logIn(page)
      await openSession(page, id)
      await page.getByLabel('Message').fill('be hostile')
      await page.getByRole('button', { name: 'Send' }).click()
      await page.locator('.turn-end').waitFor()
      const answer = page.locator('.msg.assistant').last()
      expect(await answer.getByRole('heading', { name: 'Report' }).count()).toBe(1)
      expect(await answer.getByRole('link', { name: 'docs' }).getAttribute('href')).toBe(
        'https://example.com/docs',
      )
      // What is not safe is shown as text.
      expect(await answer.getByRole('link').count()).toBe(2)
      expect(await answer.getByRole('link', { name: 'pixel' }).getAttribute('href')).toBe(
        'https://tracker.example/p.gif',
      )
      expect(await answer.getByText('<img src=x onerror="window.pwned=1">').count()).toBe(1)
      expect(await answer.locator('pre code').textContent()).toBe('<b>not bold</b>')
      expect(await answer.getByText('A snake_case_name stays,').count()).toBe(1)
      expect(await answer.locator('em').allTextContents()).toEqual(['this'])
      expect(await answer.locator('img, script, b').count()).toBe(0)
      expect(await page.evaluate('window.pwned')).toBeUndefined()
      expect(foreign).toEqual([])
      await shot(page, '10-markdown')
      await page.close()
      expect(pageErrors(page)).toEqual([])
    })

    test('the queue shows a waiting turn; Cancel stops the running one and the next runs', async () => {
      const id = await newSession('ws-console', 'Queue')
      const page = await newPage()
      await logIn(page)
      await openSession(page, id)
      const pause = b.worker!.pause(id)
      await page.getByLabel('Message').fill('wait for ever')
      await page.getByRole('button', { name: 'Send' }).click()
      await pause.arrived
      await page.getByLabel('Message').fill('after that')
      await page.getByRole('button', { name: 'Send' }).click()
      const queue = page.getByRole('list', { name: 'Queue' })
      await until(
        async () =>
          (await queue.locator('li').allTextContents()).map((t) => t.split(' ')[0]).join() ===
          'running,queued',
        { what: 'a running and a queued turn in the queue' },
      )
      await shot(page, '11-queue')
      await page.getByRole('button', { name: 'Cancel', exact: true }).click()
      await page.locator('.turn-end.state-cancelled').waitFor()
      await page.getByText('echo: after that').waitFor()
      await page.locator('.turn-end.state-done').waitFor()
      await queue.getByText('Nothing queued').waitFor()
      await shot(page, '12-cancelled')
      await page.close()
      expect(pageErrors(page)).toEqual([])
    })
  },
)
