import ipaddr from 'ipaddr.js'
import { isAbsolute, resolve } from 'node:path'
import { bool, ConfigError, int, list, parseWorkerEnv, str, url, type Env } from './config-parse.ts'
import type { LogLevel } from './log.ts'
import { parseFetchAllow } from './outbound/addresses.ts'

export { ConfigError } from './config-parse.ts'

const levels: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent']

/** Everything the broker reads from its environment, validated once at start. */
export interface Config {
  /** CCBROKER_PORT, default 8085; 0 picks a free port (tests). */
  port: number
  /** CCBROKER_HOST, the bind address, default 127.0.0.1. */
  host: string
  /** CCBROKER_PUBLIC_URL: how workers reach the broker; default http://<host>:<port>. */
  publicUrl: string | null
  /** CCBROKER_DATABASE_URL: Postgres; absent → embedded PGlite under the data directory. */
  databaseUrl: string | null
  /** CCBROKER_DATA_DIR, default ./data (absolute after loading). */
  dataDir: string
  /** CCBROKER_JWT_SECRET (≥ 32 bytes); null → generated once in the data directory (PGlite only). */
  jwtSecret: string | null
  /** CCBROKER_WORKER_TOKEN_TTL_SECONDS, default 86400: lifetime of a worker JWT. */
  workerTokenTtlSeconds: number
  /** CCBROKER_LOG_LEVEL: debug | info | warn | error | silent, default info. */
  logLevel: LogLevel
  /** CCBROKER_ACCESS_LOG: the level of the per-request access log lines (default info; off). */
  accessLog: LogLevel
  /** CCBROKER_METRICS_PUBLIC: serve /metrics without an API key (default false). */
  metricsPublic: boolean
  /** CCBROKER_API_KEYS: comma-separated; empty → the external API is open (loopback only). */
  apiKeys: readonly string[]
  /** CCBROKER_ALLOW_NO_AUTH: serve a non-loopback address without API keys (default false). */
  allowNoAuth: boolean
  /** CCBROKER_CORS_ORIGINS: exact origins (`https://app.example`) allowed cross-site; none by default. */
  corsOrigins: readonly string[]
  /** CCBROKER_ALLOWED_HOSTS: Host names served without API keys besides loopback and the public URL's. */
  allowedHosts: readonly string[]
  /** CCBROKER_FETCH_ALLOW: CIDRs or host names outbound fetches may reach although private. */
  fetchAllow: readonly string[]
  /** CCBROKER_MAX_BODY_BYTES, default 16 MiB: larger request bodies get 413. */
  maxBodyBytes: number
  /** CCBROKER_SSE_BUFFER: events a slow listener may lag behind before it is cut off (default 1024). */
  sseBufferEvents: number
  /** CCBROKER_SSE_KEEPALIVE_MS, default 15000: comment frames on idle streams. */
  sseKeepaliveMs: number
  /** CCBROKER_WORKER_TRANSPORT: ccr (CCR v2 over HTTP, Claude Code ≤ 2.1.120) or stdio (default). */
  workerTransport: 'ccr' | 'stdio'
  /** CCBROKER_CLAUDE_BIN: path or name on PATH; null → `claude` on PATH, if there is one. */
  claudeBin: string | null
  /** CCBROKER_MAX_WORKERS, default 4: turns this broker runs at once, across sessions. */
  maxWorkers: number
  /** How long a session's Claude Code process waits for its next turn; 0: one per turn. */
  workerIdleMs: number
  /** CCBROKER_QUEUE_DEPTH, default 16: turns that may wait per session (one more gets 429). */
  queueDepth: number
  /** CCBROKER_TURN_MAX_MS, default 30 min: a turn running longer is stopped and failed. */
  turnMaxMs: number
  /** CCBROKER_LEASE_MS, default 30 s: a running turn's lease; renewed at a third of it. */
  leaseMs: number
  /** CCBROKER_STOP_GRACE_MS, default 5 s: interrupt → SIGTERM → SIGKILL steps of a stop. */
  stopGraceMs: number
  /** CCBROKER_RUN_DIR: where workers' directories live; default <data dir>/run. */
  runDir: string
  /** Passed through to workers: ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, ANTHROPIC_AUTH_TOKEN, ANTHROPIC_MODEL, … */
  anthropicEnv: Readonly<Record<string, string>>
  /** CCBROKER_WORKER_ENV: extra environment for every worker: a JSON object, or KEY=VALUE,… */
  workerEnv: Readonly<Record<string, string>>
  /** PATH for workers (the broker's own). */
  path: string
  /** CCBROKER_EXECUTOR_REGISTRY_URL: where remote_* tools run; unset → no remote_* tools. */
  executorRegistryUrl: string | null
  /** CCBROKER_EXECUTOR_TIMEOUT_MS, default 10 min: one remote_* call. */
  executorTimeoutMs: number
  /** CCBROKER_IMBRIDGE_URL / CCBROKER_IMBRIDGE_SECRET: the IM bridge for send_* tools. */
  imBridgeUrl: string | null
  imBridgeSecret: string | null
  /** CCBROKER_PERMISSION_POLICY: bypass (default) | allowlist | ask. */
  permissionPolicy: 'bypass' | 'allowlist' | 'ask'
  /** CCBROKER_ALLOWED_TOOLS: tools that run without asking under `allowlist` (comma-separated). */
  allowedTools: readonly string[]
  /** CCBROKER_BUILTIN_TOOLS, default "WebSearch,WebFetch": Claude Code's own tools (--tools). */
  builtinTools: string
  /** CCBROKER_ENABLE_TOOL_SEARCH, default false: let Claude Code defer MCP tools behind ToolSearch. */
  enableToolSearch: boolean
  /** CCBROKER_SCHEDULER_POLL_MS, default 1000: how often due scheduled tasks are looked for. */
  schedulerPollMs: number
  /** CCBROKER_SCHEDULE_MIN_INTERVAL_SECONDS, default 60: the shortest time between firings. */
  scheduleMinIntervalSeconds: number
  /** CCBROKER_SCHEDULE_MAX_TASKS, default 20: active scheduled tasks one session may have. */
  scheduleMaxTasks: number
  /** CCBROKER_WORKSPACE_STORE: local (default) or openviking (default when its URL is set). */
  workspaceStore: 'local' | 'openviking'
  /** CCBROKER_WORKSPACE_DIR: the local store's root, default <data dir>/workspaces. */
  workspaceDir: string
  /** CCBROKER_STORE_RETRY_MS, default 5000: how long a store request is retried; then spooled. */
  storeRetryMs: number
  /** CCBROKER_OPENVIKING_URL, CCBROKER_OPENVIKING_API_KEY, CCBROKER_OPENVIKING_ROOT_URI. */
  openVikingUrl: string | null
  openVikingApiKey: string | null
  openVikingRootUri: string
  /** CCBROKER_WORKSPACE_BUDGET_USD: the budget of a workspace that has none of its own. */
  workspaceBudgetUsd: number | null
  /** CCBROKER_WEBHOOK_ALLOW: CIDRs or host names webhooks may reach although private. */
  webhookAllow: readonly string[]
  /** CCBROKER_WEBHOOK_POLL_MS, default 1000: how often the outbox is looked at. */
  webhookPollMs: number
  /** CCBROKER_WEBHOOK_RETRY_BASE_MS, default 5000: the first retry's delay (×4 each time). */
  webhookRetryBaseMs: number
  /** CCBROKER_WEBHOOK_MAX_AGE_MS, default 24 h: how long a delivery is retried. */
  webhookMaxAgeMs: number
  /** CCBROKER_WEBHOOK_TIMEOUT_MS, default 10000: how long one attempt may take. */
  webhookTimeoutMs: number
}

export function loadConfig(env: Env, cwd: string = process.cwd()): Readonly<Config> {
  const databaseUrl = url(env, 'CCBROKER_DATABASE_URL', ['postgres:', 'postgresql:'])
  const jwtSecret = str(env, 'CCBROKER_JWT_SECRET')
  if (jwtSecret !== null && Buffer.byteLength(jwtSecret) < 32)
    throw new ConfigError('CCBROKER_JWT_SECRET', 'must be at least 32 bytes')
  if (jwtSecret === null && databaseUrl !== null)
    throw new ConfigError(
      'CCBROKER_JWT_SECRET',
      'required with CCBROKER_DATABASE_URL: every replica must sign worker tokens with the same secret',
    )
  const logLevel = (str(env, 'CCBROKER_LOG_LEVEL') ?? 'info') as LogLevel
  if (!levels.includes(logLevel))
    throw new ConfigError('CCBROKER_LOG_LEVEL', `expected one of ${levels.join(', ')}`)
  const accessRaw = str(env, 'CCBROKER_ACCESS_LOG') ?? 'info'
  const accessLog = (accessRaw === 'off' ? 'silent' : accessRaw) as LogLevel
  if (!levels.includes(accessLog))
    throw new ConfigError('CCBROKER_ACCESS_LOG', `expected off or one of ${levels.join(', ')}`)
  const dataDir = str(env, 'CCBROKER_DATA_DIR') ?? './data'
  const transport = str(env, 'CCBROKER_WORKER_TRANSPORT') ?? 'stdio'
  if (transport !== 'ccr' && transport !== 'stdio')
    throw new ConfigError('CCBROKER_WORKER_TRANSPORT', `expected ccr or stdio, got "${transport}"`)
  const absDataDir = isAbsolute(dataDir) ? dataDir : resolve(cwd, dataDir)
  const runDir = str(env, 'CCBROKER_RUN_DIR')
  const anthropicEnv: Record<string, string> = {}
  for (const [k, v] of Object.entries(env))
    if (v !== undefined && (k.startsWith('ANTHROPIC_') || k === 'CLAUDE_CODE_OAUTH_TOKEN'))
      anthropicEnv[k] = v
  const workerEnv = parseWorkerEnv(str(env, 'CCBROKER_WORKER_ENV'))
  const imBridgeUrl = url(env, 'CCBROKER_IMBRIDGE_URL', ['http:', 'https:'])
  const imBridgeSecret = str(env, 'CCBROKER_IMBRIDGE_SECRET')
  if (imBridgeUrl && !imBridgeSecret)
    throw new ConfigError('CCBROKER_IMBRIDGE_SECRET', 'required with CCBROKER_IMBRIDGE_URL')
  const policy = str(env, 'CCBROKER_PERMISSION_POLICY') ?? 'bypass'
  if (policy !== 'bypass' && policy !== 'allowlist' && policy !== 'ask')
    throw new ConfigError(
      'CCBROKER_PERMISSION_POLICY',
      `expected bypass, allowlist or ask, got "${policy}"`,
    )
  const openVikingUrl = url(env, 'CCBROKER_OPENVIKING_URL', ['http:', 'https:'])
  const storeKind = str(env, 'CCBROKER_WORKSPACE_STORE') ?? (openVikingUrl ? 'openviking' : 'local')
  if (storeKind !== 'local' && storeKind !== 'openviking')
    throw new ConfigError(
      'CCBROKER_WORKSPACE_STORE',
      `expected local or openviking, got "${storeKind}"`,
    )
  if (storeKind === 'openviking' && !openVikingUrl)
    throw new ConfigError(
      'CCBROKER_OPENVIKING_URL',
      'required with CCBROKER_WORKSPACE_STORE=openviking',
    )
  const openVikingRootUri = str(env, 'CCBROKER_OPENVIKING_ROOT_URI') ?? 'viking://resources/'
  if (!openVikingRootUri.startsWith('viking://'))
    throw new ConfigError('CCBROKER_OPENVIKING_ROOT_URI', 'expected a viking:// URI')
  const absolute = (name: string, fallback: string) => {
    const v = str(env, name)
    return v ? (isAbsolute(v) ? v : resolve(cwd, v)) : fallback
  }
  const apiKeys = (str(env, 'CCBROKER_API_KEYS') ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean)
  for (const key of apiKeys)
    if (key.length < 16)
      throw new ConfigError('CCBROKER_API_KEYS', 'every key must be at least 16 characters')
  const host = str(env, 'CCBROKER_HOST') ?? '127.0.0.1'
  const allowNoAuth = bool(env, 'CCBROKER_ALLOW_NO_AUTH', false)
  if (apiKeys.length === 0 && !isLoopbackHost(host) && !allowNoAuth)
    throw new ConfigError(
      'CCBROKER_API_KEYS',
      `required when listening on ${host}, which is not a loopback address: anyone who reaches ` +
        'it could run agent turns. Set CCBROKER_API_KEYS, listen on 127.0.0.1, or set ' +
        'CCBROKER_ALLOW_NO_AUTH=true if the network itself is trusted',
    )
  const corsOrigins = list(env, 'CCBROKER_CORS_ORIGINS')
  for (const origin of corsOrigins) {
    const parsed = URL.parse(origin)
    if (!parsed || parsed.origin !== origin)
      throw new ConfigError(
        'CCBROKER_CORS_ORIGINS',
        `"${origin}" is not an origin; give scheme, host and port only, e.g. https://app.example`,
      )
  }
  const fetchAllow = list(env, 'CCBROKER_FETCH_ALLOW')
  try {
    parseFetchAllow(fetchAllow)
  } catch (err) {
    throw new ConfigError('CCBROKER_FETCH_ALLOW', (err as Error).message)
  }
  const webhookAllow = list(env, 'CCBROKER_WEBHOOK_ALLOW')
  try {
    parseFetchAllow(webhookAllow)
  } catch (err) {
    throw new ConfigError('CCBROKER_WEBHOOK_ALLOW', (err as Error).message)
  }
  const budgetRaw = str(env, 'CCBROKER_WORKSPACE_BUDGET_USD')
  const workspaceBudgetUsd = budgetRaw === null ? null : Number(budgetRaw)
  if (
    workspaceBudgetUsd !== null &&
    !(Number.isFinite(workspaceBudgetUsd) && workspaceBudgetUsd >= 0)
  )
    throw new ConfigError(
      'CCBROKER_WORKSPACE_BUDGET_USD',
      `expected an amount in USD (a number ≥ 0), got "${budgetRaw}"`,
    )
  return Object.freeze({
    port: int(env, 'CCBROKER_PORT', 8085, 0, 65535),
    host,
    publicUrl: url(env, 'CCBROKER_PUBLIC_URL', ['http:', 'https:']),
    databaseUrl,
    dataDir: absDataDir,
    jwtSecret,
    workerTokenTtlSeconds: int(env, 'CCBROKER_WORKER_TOKEN_TTL_SECONDS', 86_400, 60, 30 * 86_400),
    logLevel,
    accessLog,
    metricsPublic: bool(env, 'CCBROKER_METRICS_PUBLIC', false),
    apiKeys: Object.freeze(apiKeys),
    allowNoAuth,
    corsOrigins: Object.freeze(corsOrigins),
    allowedHosts: Object.freeze(list(env, 'CCBROKER_ALLOWED_HOSTS').map((h) => h.toLowerCase())),
    fetchAllow: Object.freeze(fetchAllow),
    maxBodyBytes: int(env, 'CCBROKER_MAX_BODY_BYTES', 16 * 1024 * 1024, 1024, 1024 ** 3),
    sseBufferEvents: int(env, 'CCBROKER_SSE_BUFFER', 1024, 1, 1_000_000),
    sseKeepaliveMs: int(env, 'CCBROKER_SSE_KEEPALIVE_MS', 15_000, 100, 3_600_000),
    workerTransport: transport,
    claudeBin: str(env, 'CCBROKER_CLAUDE_BIN'),
    maxWorkers: int(env, 'CCBROKER_MAX_WORKERS', 4, 1, 1024),
    workerIdleMs: int(env, 'CCBROKER_WORKER_IDLE_MS', 60_000, 0, 86_400_000),
    queueDepth: int(env, 'CCBROKER_QUEUE_DEPTH', 16, 1, 10_000),
    turnMaxMs: int(env, 'CCBROKER_TURN_MAX_MS', 30 * 60_000, 1_000, 7 * 86_400_000),
    leaseMs: int(env, 'CCBROKER_LEASE_MS', 30_000, 300, 3_600_000),
    stopGraceMs: int(env, 'CCBROKER_STOP_GRACE_MS', 5_000, 50, 600_000),
    runDir: runDir
      ? isAbsolute(runDir)
        ? runDir
        : resolve(cwd, runDir)
      : resolve(absDataDir, 'run'),
    anthropicEnv: Object.freeze(anthropicEnv),
    workerEnv: Object.freeze(workerEnv),
    path: env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    executorRegistryUrl: url(env, 'CCBROKER_EXECUTOR_REGISTRY_URL', ['http:', 'https:']),
    executorTimeoutMs: int(env, 'CCBROKER_EXECUTOR_TIMEOUT_MS', 10 * 60_000, 1_000, 86_400_000),
    imBridgeUrl,
    imBridgeSecret,
    permissionPolicy: policy,
    allowedTools: Object.freeze(list(env, 'CCBROKER_ALLOWED_TOOLS')),
    builtinTools: env.CCBROKER_BUILTIN_TOOLS?.trim() ?? 'WebSearch,WebFetch',
    enableToolSearch: bool(env, 'CCBROKER_ENABLE_TOOL_SEARCH', false),
    schedulerPollMs: int(env, 'CCBROKER_SCHEDULER_POLL_MS', 1_000, 50, 3_600_000),
    scheduleMinIntervalSeconds: int(env, 'CCBROKER_SCHEDULE_MIN_INTERVAL_SECONDS', 60, 1, 86_400),
    scheduleMaxTasks: int(env, 'CCBROKER_SCHEDULE_MAX_TASKS', 20, 1, 10_000),
    workspaceStore: storeKind,
    workspaceDir: absolute('CCBROKER_WORKSPACE_DIR', resolve(absDataDir, 'workspaces')),
    storeRetryMs: int(env, 'CCBROKER_STORE_RETRY_MS', 5_000, 0, 600_000),
    openVikingUrl,
    openVikingApiKey: str(env, 'CCBROKER_OPENVIKING_API_KEY'),
    openVikingRootUri,
    workspaceBudgetUsd,
    webhookAllow: Object.freeze(webhookAllow),
    webhookPollMs: int(env, 'CCBROKER_WEBHOOK_POLL_MS', 1_000, 10, 3_600_000),
    webhookRetryBaseMs: int(env, 'CCBROKER_WEBHOOK_RETRY_BASE_MS', 5_000, 10, 3_600_000),
    webhookMaxAgeMs: int(env, 'CCBROKER_WEBHOOK_MAX_AGE_MS', 86_400_000, 1_000, 30 * 86_400_000),
    webhookTimeoutMs: int(env, 'CCBROKER_WEBHOOK_TIMEOUT_MS', 10_000, 100, 600_000),
  })
}

/**
 * The credentials in a configuration: what must never be written into a workspace or a log.
 * Model names and base URLs are in every transcript, so only keys, tokens and secrets count.
 */
export function secretValues(config: Readonly<Config>): string[] {
  const anthropic = Object.entries(config.anthropicEnv)
    .filter(([k]) => /KEY|TOKEN|SECRET|HEADERS/.test(k))
    .map(([, v]) => v)
  return [
    ...anthropic,
    ...config.apiKeys,
    config.jwtSecret,
    config.imBridgeSecret,
    config.openVikingApiKey,
  ].filter((v): v is string => typeof v === 'string' && v.length > 0)
}

/** Whether a bind address or Host name is this machine only: localhost, 127.0.0.0/8 or ::1. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1')
  if (h === 'localhost' || h.endsWith('.localhost')) return true
  return ipaddr.isValid(h) && ipaddr.process(h).range() === 'loopback'
}
