import { existsSync } from 'node:fs'
import { resolve } from 'node:path'

// Versions installed by scripts/fetch-claude.sh (keep in sync with its defaults). CCR v2 needs
// 2.1.120: from 2.1.121 on the CLI rejects a loopback --sdk-url.
const VERSIONS = { ccr: '2.1.120', stdio: '2.1.332' } as const
const OVERRIDES = {
  ccr: 'CCBROKER_TEST_CLAUDE_CCR_BIN',
  stdio: 'CCBROKER_TEST_CLAUDE_STDIO_BIN',
} as const

const REPO_ROOT = resolve(import.meta.dir, '../..')

/**
 * Absolute path of the Claude Code binary for a transport, or null when it isn't installed (the
 * e2e tests then skip). With CCBROKER_TEST_REQUIRE_CLAUDE=1 (CI) a missing binary is an error.
 */
export function claudeBin(transport: 'ccr' | 'stdio'): string | null {
  const override = process.env[OVERRIDES[transport]]
  const path = override
    ? resolve(override)
    : resolve(REPO_ROOT, '.cache/claude', VERSIONS[transport], 'node_modules/.bin/claude')
  if (existsSync(path)) return path
  if (process.env.CCBROKER_TEST_REQUIRE_CLAUDE === '1')
    throw new Error(
      `Claude Code ${VERSIONS[transport]} is not installed at ${path}: run npm run fetch-claude`,
    )
  console.log(
    `skip: Claude Code ${VERSIONS[transport]} e2e tests (npm run fetch-claude installs it)`,
  )
  return null
}

/**
 * A minimal environment for a Claude Code process: PATH, HOME (from `extra`, else the caller's),
 * the switches that keep it offline, then `extra`. Nothing ANTHROPIC_* or CLAUDE_* is inherited.
 */
export function claudeTestEnv(extra: Record<string, string>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    ...extra,
  }
}
