import { Elysia } from 'elysia'
import { swaggerUiFiles } from './docs-assets.ts'
import { openApiDocument } from './openapi.ts'

// The page loads only this origin's files; Swagger UI styles elements through the DOM (not
// inline attributes) and draws its icons from data: URLs in its stylesheet.
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ')

const PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>cc-broker API</title>
    <link rel="stylesheet" href="/docs/swagger-ui.css" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/docs/swagger-ui-bundle.js"></script>
    <script src="/docs/init.js"></script>
  </body>
</html>
`

// A file, not an inline script, so the policy needs no 'unsafe-inline'. No validatorUrl: it
// would send the document to a public validator.
const INIT = `window.ui = SwaggerUIBundle({
  url: '/docs/json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  validatorUrl: null,
})
`

const hide = { detail: { hide: true } }
// Swagger UI's files change only with the broker, so browsers may keep them for an hour; the page
// and the document are revalidated every time.
const headers = (type: string, cache = 'no-cache') => ({
  'content-type': type,
  'x-content-type-options': 'nosniff',
  'cache-control': cache,
})
const asset = (body: string | Blob, type: string) =>
  new Response(body, { headers: headers(type, 'public, max-age=3600') })
const { 'swagger-ui-bundle.js': bundle, 'swagger-ui.css': css } = swaggerUiFiles

/** GET /docs (Swagger UI, offline), its files under /docs/, and the document at /docs/json. */
export const docs = () => {
  let document: ReturnType<typeof openApiDocument> | undefined
  const plugin = new Elysia({ name: 'cc-broker/docs' })
  return plugin
    .get('/docs/json', () => (document ??= openApiDocument(plugin)), hide)
    .get(
      '/docs',
      () =>
        new Response(PAGE, {
          headers: { ...headers('text/html; charset=utf-8'), 'content-security-policy': CSP },
        }),
      hide,
    )
    .get('/docs/init.js', () => asset(INIT, 'text/javascript; charset=utf-8'), hide)
    .get('/docs/swagger-ui-bundle.js', () => asset(Bun.file(bundle.path), bundle.type), hide)
    .get('/docs/swagger-ui.css', () => asset(Bun.file(css.path), css.type), hide)
}
