import { Elysia } from 'elysia'
import { consoleScript } from '../console/bundle.ts' with { type: 'macro' }
import { CONSOLE_PAGE } from '../console/page.ts'
import cssPath from '../console/console.css' with { type: 'file' }

// Bundled when the broker is built (a macro), so the binary carries the console and serves it
// offline.
const SCRIPT: string = consoleScript()

// Nothing from elsewhere, no inline script or style, no frames, no plugins: model output shown
// on the page cannot load or run anything even if it slipped past the renderer.
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ')

const file = (body: string | Blob, type: string) =>
  new Response(body, {
    headers: {
      'content-type': type,
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      // The files change only with the broker; revalidated so an upgrade shows at once.
      'cache-control': 'no-cache',
    },
  })
// Served so a browser's icon request finds something here rather than a 404.
const ICON =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#0b57d0"/></svg>'
const hide = { detail: { hide: true } }
const page = () => file(CONSOLE_PAGE, 'text/html; charset=utf-8')

/**
 * GET /console: the operators' page and its files. They hold no data: every call the page
 * makes is an API call with the key the operator typed in.
 */
export const consoleRoutes = () =>
  new Elysia({ name: 'cc-broker/console' })
    .get('/console', page, hide)
    .get('/console/', page, hide)
    .get('/console/console.js', () => file(SCRIPT, 'text/javascript; charset=utf-8'), hide)
    .get('/console/icon.svg', () => file(ICON, 'image/svg+xml'), hide)
    .get('/console/console.css', () => file(Bun.file(cssPath), 'text/css; charset=utf-8'), hide)
