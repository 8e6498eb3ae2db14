/** The console's one page: a shell the script fills; no inline script or style. */
export const CONSOLE_PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <meta name="referrer" content="no-referrer" />
    <title>cc-broker console</title>
    <link rel="icon" href="/console/icon.svg" />
    <link rel="stylesheet" href="/console/console.css" />
    <script type="module" src="/console/console.js"></script>
  </head>
  <body>
    <header class="top">
      <a class="brand" href="#/">cc-broker console</a>
      <span id="conn" class="conn" role="status" aria-live="polite"></span>
      <span id="account"></span>
    </header>
    <main id="main">
      <noscript>The console needs JavaScript.</noscript>
    </main>
  </body>
</html>
`
