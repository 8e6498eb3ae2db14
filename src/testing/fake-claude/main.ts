// A scripted stand-in for the `claude` CLI, run as a real child process. It picks its transport
// the way Claude Code does: CCR v2 with --sdk-url and CLAUDE_CODE_USE_CCR_V2=1, else stdio
// stream-json. FAKE_CLAUDE_SCENARIO picks what a turn does (`control`, the default when
// FAKE_CLAUDE_CONTROL_URL is set, asks the test process); other FAKE_CLAUDE_* variables tune it.
import { runCcr } from './ccr.ts'
import { createEngine } from './engine.ts'
import { connectMcp, type McpLink } from './mcp-client.ts'
import { checkScenario, checkSession, die, readOptions, say } from './options.ts'
import { runStdio } from './stdio.ts'

// `claude --version`, as the real one answers it (doctor reads it).
if (process.argv[2] === '--version') {
  console.log(`${process.env.FAKE_CLAUDE_VERSION ?? '2.1.120'} (Claude Code)`)
  process.exit(0)
}
const o = readOptions(process.argv.slice(2), process.env)
o.record()
checkScenario(o)
if (o.scenario === 'no-start') die(2, 'fake: cannot start')
say(`fake-claude ${o.transport} started pid=${process.pid}`)
say(`fake-claude scenario=${o.scenario} cwd=${process.cwd()}`)
// A careless CLI that prints its credentials: the broker must keep them out of its log.
if (o.env.FAKE_CLAUDE_LEAK_SECRETS === '1')
  say(
    `token=${o.env.CLAUDE_CODE_SESSION_ACCESS_TOKEN} key=${o.env.ANTHROPIC_API_KEY}` +
      ` oauth=${o.env.CLAUDE_CODE_OAUTH_TOKEN}`,
  )
if (o.scenario === 'stubborn')
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const)
    process.on(sig, () => say(`fake-claude: ignoring ${sig}`))
// Claude Code 2.1.120 without CCR_V2 takes the v1 WebSocket path; measured: exit 0, no traffic.
if (o.transport === 'ccr-v1')
  die(0, 'fake-claude: --sdk-url without CLAUDE_CODE_USE_CCR_V2=1, exit 0')
checkSession(o)

// Connected at the first use; the `mcp` scenario connects before the ingress, as Claude Code does.
let mcp: Promise<McpLink> | null = null
const linkMcp = () => (mcp ??= connectMcp(o, (name) => engine.markMcpFailed(name)))
const engine = createEngine(o, linkMcp)
if (o.scenario === 'mcp') await linkMcp()
try {
  await (o.transport === 'ccr' ? runCcr(o, engine, o.sdkUrl!) : runStdio(o, engine))
} catch (err) {
  die(1, `fake-claude: ${(err as Error)?.stack ?? err}`)
}
