// How the fake reads its command line and environment, the way Claude Code does.
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { writeSync } from 'node:fs'
import { join } from 'node:path'

export type Json = Record<string, any>

export const VERSION = '2.1.120'
export const SCENARIOS = [
  'echo',
  'crash',
  'hang',
  'stubborn',
  'slow',
  'no-start',
  'tool',
  'mcp',
  'grandchild',
  'control',
] as const
export type Scenario = (typeof SCENARIOS)[number]

const DEFAULT_TOOLS = [
  'Task',
  'Bash',
  'Glob',
  'Grep',
  'Read',
  'Edit',
  'Write',
  'WebFetch',
  'TodoWrite',
]

// Options that take a value; the others are switches.
const VALUE_FLAGS = new Set(
  [
    'sdk-url',
    'session-id',
    'resume',
    'tools',
    'mcp-config',
    'model',
    'permission-mode',
    'input-format',
    'output-format',
    'allowedTools',
    'allowed-tools',
    'disallowedTools',
    'disallowed-tools',
    'permission-prompt-tool',
    'debug-file',
    'system-prompt',
    'append-system-prompt',
    'max-turns',
    'add-dir',
    'settings',
    'fallback-model',
    'setting-sources',
    'agents',
    'max-budget-usd',
  ]
    .map((f) => `--${f}`)
    .concat('-r'),
)
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export const say = (line: string) => void writeSync(2, line + '\n')
export const die = (code: number, line?: string): never => {
  if (line) say(line)
  process.exit(code)
}
export const isObj = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v)
export const uuid = () => crypto.randomUUID()
export const now = () => new Date().toISOString()
const truthy = (v: string | undefined) =>
  ['1', 'true', 'yes', 'on'].includes((v ?? '').toLowerCase())
const splitList = (v: string) => v.split(/[,\s]+/).filter(Boolean)

export type Transport = 'stdio' | 'ccr' | 'ccr-v1'

/** Everything the command line and environment say, checked as Claude Code checks them. */
export interface Options {
  env: NodeJS.ProcessEnv
  argv: string[]
  positional: string[]
  flag(...names: string[]): string | undefined
  has(...names: string[]): boolean
  transport: Transport
  sdkUrl: string | undefined
  scenario: Scenario
  sessionId: string
  resumed: boolean
  /** Given with --session-id (a new conversation under a chosen id). */
  explicitId: string | undefined
  /** With --resume and --fork-session: the conversation copied into this new one. */
  forkOf: string | undefined
  /** --max-budget-usd: what this process may spend before it stops the turn. */
  maxBudgetUsd: number | undefined
  model: string
  permissionMode: string
  tools: string[]
  allowedTools: string[]
  mcpServers: Record<string, Json>
  /** Writes what this process was started with into FAKE_CLAUDE_RECORD_DIR, if set. */
  record(extra?: Json): void
}

export function readOptions(argv: string[], env: NodeJS.ProcessEnv): Options {
  const flags = new Map<string, string[]>()
  const positional: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1
    const name = eq > 0 ? arg.slice(0, eq) : arg
    if (!name.startsWith('-') || name === '-') {
      positional.push(arg)
      continue
    }
    const value = eq > 0 ? arg.slice(eq + 1) : VALUE_FLAGS.has(name) ? argv[++i] : ''
    if (value === undefined) die(1, `error: option '${name} <value>' argument missing`)
    flags.set(name, [...(flags.get(name) ?? []), value!])
  }
  const flag = (...names: string[]) =>
    names.map((n) => flags.get(n)?.at(-1)).find((v) => v !== undefined)
  const has = (...names: string[]) => names.some((n) => flags.has(n))

  const sdkUrl = flag('--sdk-url')?.replace(/\/+$/, '')
  const transport: Transport = !sdkUrl
    ? 'stdio'
    : truthy(env.CLAUDE_CODE_USE_CCR_V2)
      ? 'ccr'
      : 'ccr-v1'
  const record = (extra: Json = {}) => {
    const dir = env.FAKE_CLAUDE_RECORD_DIR
    if (!dir) return
    const keep = (k: string) =>
      k === 'HOME' || ['CLAUDE_', 'ANTHROPIC_', 'ENABLE_', 'DISABLE_'].some((p) => k.startsWith(p))
    const recorded = Object.fromEntries(Object.entries(env).filter(([k]) => keep(k)))
    const path = join(dir, `${process.pid}.json`)
    // Written whole and renamed, so a test polling for the file never reads half of it.
    writeFileSync(
      `${path}.tmp`,
      JSON.stringify({
        argv,
        cwd: process.cwd(),
        env: recorded,
        pid: process.pid,
        transport,
        ...extra,
      }),
    )
    renameSync(`${path}.tmp`, path)
  }

  const scenario = (env.FAKE_CLAUDE_SCENARIO ||
    (env.FAKE_CLAUDE_CONTROL_URL ? 'control' : 'echo')) as Scenario
  const resumeId = flag('--resume', '-r')
  const explicitId = flag('--session-id')
  const toolsFlag = flag('--tools')
  const mcpServers: Record<string, Json> = {}
  for (const raw of flags.get('--mcp-config') ?? []) {
    try {
      const text = raw.trimStart().startsWith('{') ? raw : readFileSync(raw, 'utf8')
      Object.assign(mcpServers, JSON.parse(text).mcpServers ?? {})
    } catch (err) {
      die(1, `Error: Invalid MCP configuration: ${(err as Error).message}`)
    }
  }
  const options: Options = {
    env,
    argv,
    positional,
    flag,
    has,
    transport,
    sdkUrl,
    scenario,
    // --fork-session: the resumed conversation continues under a new id (--session-id's).
    sessionId:
      resumeId !== undefined && has('--fork-session')
        ? (explicitId ?? uuid())
        : (resumeId ?? explicitId ?? uuid()),
    resumed: resumeId !== undefined,
    explicitId,
    forkOf: resumeId !== undefined && has('--fork-session') ? resumeId : undefined,
    maxBudgetUsd:
      flag('--max-budget-usd') === undefined ? undefined : Number(flag('--max-budget-usd')),
    model: flag('--model') ?? env.ANTHROPIC_MODEL ?? 'fake-model',
    permissionMode: flag('--permission-mode') ?? 'default',
    tools:
      toolsFlag === undefined || toolsFlag === 'default' ? DEFAULT_TOOLS : splitList(toolsFlag),
    allowedTools: [
      ...(flags.get('--allowedTools') ?? []),
      ...(flags.get('--allowed-tools') ?? []),
    ].flatMap(splitList),
    mcpServers,
    record,
  }
  return options
}

export function checkScenario(o: Options): void {
  if (!(SCENARIOS as readonly string[]).includes(o.scenario))
    die(
      1,
      `fake-claude: FAKE_CLAUDE_SCENARIO must be one of ${SCENARIOS.join(', ')}, got ${o.scenario}`,
    )
}

/** The session checks Claude Code makes before it starts; a failure exits as it does. */
export function checkSession(o: Options): void {
  const budget = o.flag('--max-budget-usd')
  if (budget !== undefined && !(Number(budget) > 0))
    die(1, `Error: --max-budget-usd must be a positive number, got ${budget}`)
  if (o.explicitId !== undefined && !UUID_RE.test(o.explicitId))
    die(1, 'Error: Invalid session ID. Must be a valid UUID.')
  if (o.explicitId && o.resumed && !o.has('--fork-session'))
    die(
      1,
      'Error: --session-id can only be used with --continue or --resume if --fork-session is also specified.',
    )
}
