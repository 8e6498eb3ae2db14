import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'

/** Debian's Chromium (`apt-get install chromium`), or CCBROKER_TEST_CHROMIUM. */
const CHROMIUM = process.env.CCBROKER_TEST_CHROMIUM ?? '/usr/bin/chromium'

/** Where screenshots of browser tests go, for a person to look at (ignored by git). */
export const ARTIFACTS = resolve(import.meta.dir, '../../test-artifacts')

/**
 * The Chromium executable, or null when it is not installed (the browser tests then skip).
 * With CCBROKER_TEST_REQUIRE_BROWSER=1 (CI) a missing one is an error.
 */
export function chromiumBin(): string | null {
  if (existsSync(CHROMIUM)) return CHROMIUM
  if (process.env.CCBROKER_TEST_REQUIRE_BROWSER === '1')
    throw new Error(`Chromium is not installed at ${CHROMIUM}: apt-get install -y chromium`)
  console.log(`skip: browser tests (no Chromium at ${CHROMIUM}; apt-get install -y chromium)`)
  return null
}

/** Headless Chromium; disposing closes it. `--no-sandbox`: tests run as root in CI. */
export async function launchBrowser(executablePath: string): Promise<Browser & AsyncDisposable> {
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox'],
  })
  return Object.assign(browser, { [Symbol.asyncDispose]: () => browser.close() })
}

/** Saves a full-page screenshot as `<ARTIFACTS>/<folder>/<name>.png`. */
export async function screenshot(page: Page, folder: string, name: string): Promise<void> {
  const dir = join(ARTIFACTS, folder)
  await mkdir(dir, { recursive: true })
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true })
}
