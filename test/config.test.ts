import { describe, expect, test } from 'bun:test'
import { ConfigError, loadConfig } from '../src/config.ts'

const CWD = '/srv/broker'
const SECRET = 's'.repeat(32)

const defaults = {
  port: 8085,
  host: '127.0.0.1',
  publicUrl: null,
  databaseUrl: null,
  dataDir: '/srv/broker/data',
  jwtSecret: null,
  workerTokenTtlSeconds: 86_400,
  logLevel: 'info',
  accessLog: 'info',
  metricsPublic: false,
  apiKeys: [],
  allowNoAuth: false,
  corsOrigins: [],
  allowedHosts: [],
  fetchAllow: [],
  maxBodyBytes: 16 * 1024 * 1024,
  sseBufferEvents: 1024,
  sseKeepaliveMs: 15_000,
  workerTransport: 'stdio',
  claudeBin: null,
  maxWorkers: 4,
  workerIdleMs: 60_000,
  queueDepth: 16,
  turnMaxMs: 30 * 60_000,
  leaseMs: 30_000,
  stopGraceMs: 5_000,
  runDir: '/srv/broker/data/run',
  anthropicEnv: {},
  workerEnv: {},
  path: '/usr/local/bin:/usr/bin:/bin',
  executorRegistryUrl: null,
  executorTimeoutMs: 10 * 60_000,
  imBridgeUrl: null,
  imBridgeSecret: null,
  permissionPolicy: 'bypass',
  allowedTools: [],
  builtinTools: 'WebSearch,WebFetch',
  enableToolSearch: false,
  schedulerPollMs: 1_000,
  scheduleMinIntervalSeconds: 60,
  scheduleMaxTasks: 20,
  workspaceStore: 'local',
  workspaceDir: '/srv/broker/data/workspaces',
  storeRetryMs: 5_000,
  openVikingUrl: null,
  openVikingApiKey: null,
  openVikingRootUri: 'viking://resources/',
  workspaceBudgetUsd: null,
  webhookAllow: [],
  webhookPollMs: 1_000,
  webhookRetryBaseMs: 5_000,
  webhookMaxAgeMs: 86_400_000,
  webhookTimeoutMs: 10_000,
}

/** The ConfigError that loading `env` throws (fails the test when it loads). */
function configError(env: Record<string, string>): { variable: string; message: string } {
  try {
    loadConfig(env, CWD)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return { variable: (err as ConfigError).variable, message: (err as ConfigError).message }
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`)
}

describe('loadConfig', () => {
  test('an empty environment gives the embedded defaults, frozen', () => {
    const config = loadConfig({}, CWD)
    expect(config).toEqual(defaults as never)
    expect(Object.isFrozen(config)).toBe(true)
    expect(Object.isFrozen(config.apiKeys)).toBe(true)
  })

  test.each<[string, Record<string, string>, Record<string, unknown>]>([
    ['CCBROKER_PORT', { CCBROKER_PORT: '9000' }, { port: 9000 }],
    ['CCBROKER_PORT=0 (any free port)', { CCBROKER_PORT: '0' }, { port: 0 }],
    ['CCBROKER_HOST, loopback', { CCBROKER_HOST: '127.0.0.2' }, { host: '127.0.0.2' }],
    [
      'CCBROKER_HOST, any address, with API keys',
      { CCBROKER_HOST: '0.0.0.0', CCBROKER_API_KEYS: 'key-aaaaaaaaaaaaaaaa' },
      { host: '0.0.0.0', apiKeys: ['key-aaaaaaaaaaaaaaaa'] },
    ],
    [
      'CCBROKER_HOST, any address, without keys but with CCBROKER_ALLOW_NO_AUTH',
      { CCBROKER_HOST: '0.0.0.0', CCBROKER_ALLOW_NO_AUTH: 'true' },
      { host: '0.0.0.0', allowNoAuth: true },
    ],
    [
      'CCBROKER_CORS_ORIGINS, CCBROKER_ALLOWED_HOSTS (lower-cased), CCBROKER_FETCH_ALLOW',
      {
        CCBROKER_CORS_ORIGINS: 'https://app.example, http://localhost:3000',
        CCBROKER_ALLOWED_HOSTS: 'Broker.Internal,other',
        CCBROKER_FETCH_ALLOW: '10.0.0.0/8,files.internal',
      },
      {
        corsOrigins: ['https://app.example', 'http://localhost:3000'],
        allowedHosts: ['broker.internal', 'other'],
        fetchAllow: ['10.0.0.0/8', 'files.internal'],
      },
    ],
    [
      'CCBROKER_SCHEDULE_MIN_INTERVAL_SECONDS, CCBROKER_SCHEDULE_MAX_TASKS',
      { CCBROKER_SCHEDULE_MIN_INTERVAL_SECONDS: '1', CCBROKER_SCHEDULE_MAX_TASKS: '3' },
      { scheduleMinIntervalSeconds: 1, scheduleMaxTasks: 3 },
    ],
    [
      'CCBROKER_WORKSPACE_BUDGET_USD and the CCBROKER_WEBHOOK_* settings',
      {
        CCBROKER_WORKSPACE_BUDGET_USD: '12.5',
        CCBROKER_WEBHOOK_ALLOW: '127.0.0.1,hooks.internal',
        CCBROKER_WEBHOOK_POLL_MS: '100',
        CCBROKER_WEBHOOK_RETRY_BASE_MS: '250',
        CCBROKER_WEBHOOK_MAX_AGE_MS: '60000',
        CCBROKER_WEBHOOK_TIMEOUT_MS: '2000',
      },
      {
        workspaceBudgetUsd: 12.5,
        webhookAllow: ['127.0.0.1', 'hooks.internal'],
        webhookPollMs: 100,
        webhookRetryBaseMs: 250,
        webhookMaxAgeMs: 60_000,
        webhookTimeoutMs: 2_000,
      },
    ],
    [
      'CCBROKER_PUBLIC_URL, trailing slashes dropped',
      { CCBROKER_PUBLIC_URL: 'https://broker.example.com/' },
      { publicUrl: 'https://broker.example.com' },
    ],
    [
      'CCBROKER_DATABASE_URL with CCBROKER_JWT_SECRET',
      { CCBROKER_DATABASE_URL: 'postgres://u:p@db:5432/cc', CCBROKER_JWT_SECRET: SECRET },
      { databaseUrl: 'postgres://u:p@db:5432/cc', jwtSecret: SECRET },
    ],
    [
      'CCBROKER_DATABASE_URL as postgresql://',
      { CCBROKER_DATABASE_URL: 'postgresql://db/cc', CCBROKER_JWT_SECRET: SECRET },
      { databaseUrl: 'postgresql://db/cc', jwtSecret: SECRET },
    ],
    [
      'CCBROKER_DATA_DIR relative to the working directory',
      { CCBROKER_DATA_DIR: 'state' },
      {
        dataDir: '/srv/broker/state',
        runDir: '/srv/broker/state/run',
        workspaceDir: '/srv/broker/state/workspaces',
      },
    ],
    [
      'CCBROKER_DATA_DIR absolute',
      { CCBROKER_DATA_DIR: '/var/lib/ccb' },
      {
        dataDir: '/var/lib/ccb',
        runDir: '/var/lib/ccb/run',
        workspaceDir: '/var/lib/ccb/workspaces',
      },
    ],
    [
      'CCBROKER_JWT_SECRET alone (embedded database)',
      { CCBROKER_JWT_SECRET: SECRET },
      { jwtSecret: SECRET },
    ],
    [
      'CCBROKER_WORKER_TOKEN_TTL_SECONDS',
      { CCBROKER_WORKER_TOKEN_TTL_SECONDS: '600' },
      { workerTokenTtlSeconds: 600 },
    ],
    ['CCBROKER_LOG_LEVEL', { CCBROKER_LOG_LEVEL: 'debug' }, { logLevel: 'debug' }],
    [
      'CCBROKER_API_KEYS, comma-separated, blanks trimmed',
      { CCBROKER_API_KEYS: ' key-aaaaaaaaaaaaaaaa , key-bbbbbbbbbbbbbbbb,' },
      { apiKeys: ['key-aaaaaaaaaaaaaaaa', 'key-bbbbbbbbbbbbbbbb'] },
    ],
    ['CCBROKER_MAX_BODY_BYTES', { CCBROKER_MAX_BODY_BYTES: '65536' }, { maxBodyBytes: 65536 }],
    ['CCBROKER_SSE_BUFFER', { CCBROKER_SSE_BUFFER: '64' }, { sseBufferEvents: 64 }],
    ['CCBROKER_SSE_KEEPALIVE_MS', { CCBROKER_SSE_KEEPALIVE_MS: '200' }, { sseKeepaliveMs: 200 }],
    ['CCBROKER_WORKER_TRANSPORT', { CCBROKER_WORKER_TRANSPORT: 'ccr' }, { workerTransport: 'ccr' }],
    [
      'CCBROKER_CLAUDE_BIN',
      { CCBROKER_CLAUDE_BIN: '/opt/claude/bin/claude' },
      { claudeBin: '/opt/claude/bin/claude' },
    ],
    ['CCBROKER_MAX_WORKERS', { CCBROKER_MAX_WORKERS: '12' }, { maxWorkers: 12 }],
    ['CCBROKER_WORKER_IDLE_MS', { CCBROKER_WORKER_IDLE_MS: '0' }, { workerIdleMs: 0 }],
    ['CCBROKER_QUEUE_DEPTH', { CCBROKER_QUEUE_DEPTH: '3' }, { queueDepth: 3 }],
    ['CCBROKER_TURN_MAX_MS', { CCBROKER_TURN_MAX_MS: '60000' }, { turnMaxMs: 60_000 }],
    ['CCBROKER_LEASE_MS', { CCBROKER_LEASE_MS: '5000' }, { leaseMs: 5_000 }],
    ['CCBROKER_STOP_GRACE_MS', { CCBROKER_STOP_GRACE_MS: '250' }, { stopGraceMs: 250 }],
    ['CCBROKER_RUN_DIR', { CCBROKER_RUN_DIR: 'runs' }, { runDir: '/srv/broker/runs' }],
    [
      'CCBROKER_WORKER_ENV',
      { CCBROKER_WORKER_ENV: 'A=1, B = two,C=x=y' },
      { workerEnv: { A: '1', B: ' two', C: 'x=y' } },
    ],
    [
      'ANTHROPIC_* and CLAUDE_CODE_OAUTH_TOKEN, passed to workers',
      {
        ANTHROPIC_BASE_URL: 'http://127.0.0.1:9',
        ANTHROPIC_API_KEY: 'sk-test',
        CLAUDE_CODE_OAUTH_TOKEN: 'oauth',
        CLAUDE_CODE_OTHER: 'not passed',
      },
      {
        anthropicEnv: {
          ANTHROPIC_BASE_URL: 'http://127.0.0.1:9',
          ANTHROPIC_API_KEY: 'sk-test',
          CLAUDE_CODE_OAUTH_TOKEN: 'oauth',
        },
      },
    ],
    [
      'CCBROKER_WORKER_ENV as a JSON object',
      { CCBROKER_WORKER_ENV: '{"A":"1,2","B":"x=y"}' },
      { workerEnv: { A: '1,2', B: 'x=y' } },
    ],
    [
      'CCBROKER_EXECUTOR_REGISTRY_URL',
      { CCBROKER_EXECUTOR_REGISTRY_URL: 'http://registry:9000/' },
      { executorRegistryUrl: 'http://registry:9000' },
    ],
    [
      'CCBROKER_EXECUTOR_TIMEOUT_MS',
      { CCBROKER_EXECUTOR_TIMEOUT_MS: '5000' },
      { executorTimeoutMs: 5_000 },
    ],
    [
      'CCBROKER_IMBRIDGE_URL with CCBROKER_IMBRIDGE_SECRET',
      { CCBROKER_IMBRIDGE_URL: 'https://im.example.com', CCBROKER_IMBRIDGE_SECRET: 'shh' },
      { imBridgeUrl: 'https://im.example.com', imBridgeSecret: 'shh' },
    ],
    [
      'CCBROKER_PERMISSION_POLICY',
      { CCBROKER_PERMISSION_POLICY: 'ask' },
      { permissionPolicy: 'ask' },
    ],
    [
      'CCBROKER_ALLOWED_TOOLS',
      { CCBROKER_ALLOWED_TOOLS: 'Read, Bash,' },
      { allowedTools: ['Read', 'Bash'] },
    ],
    [
      'CCBROKER_BUILTIN_TOOLS',
      { CCBROKER_BUILTIN_TOOLS: 'WebFetch' },
      { builtinTools: 'WebFetch' },
    ],
    ['CCBROKER_BUILTIN_TOOLS empty (none)', { CCBROKER_BUILTIN_TOOLS: '' }, { builtinTools: '' }],
    [
      'CCBROKER_ENABLE_TOOL_SEARCH',
      { CCBROKER_ENABLE_TOOL_SEARCH: 'true' },
      { enableToolSearch: true },
    ],
    ['CCBROKER_SCHEDULER_POLL_MS', { CCBROKER_SCHEDULER_POLL_MS: '250' }, { schedulerPollMs: 250 }],
    [
      'CCBROKER_WORKSPACE_DIR',
      { CCBROKER_WORKSPACE_DIR: 'ws' },
      { workspaceDir: '/srv/broker/ws' },
    ],
    [
      'CCBROKER_OPENVIKING_URL (the store then defaults to openviking), API key and root URI',
      {
        CCBROKER_OPENVIKING_URL: 'http://viking:1933/',
        CCBROKER_OPENVIKING_API_KEY: 'ov-key',
        CCBROKER_OPENVIKING_ROOT_URI: 'viking://resources/ccb/',
      },
      {
        workspaceStore: 'openviking',
        openVikingUrl: 'http://viking:1933',
        openVikingApiKey: 'ov-key',
        openVikingRootUri: 'viking://resources/ccb/',
      },
    ],
    [
      'CCBROKER_WORKSPACE_STORE=local with an OpenViking URL',
      { CCBROKER_WORKSPACE_STORE: 'local', CCBROKER_OPENVIKING_URL: 'http://viking:1933' },
      { workspaceStore: 'local', openVikingUrl: 'http://viking:1933' },
    ],
    ['PATH, passed to workers', { PATH: '/opt/bin:/usr/bin' }, { path: '/opt/bin:/usr/bin' }],
    ['blank values as unset', { CCBROKER_PORT: '  ', CCBROKER_LOG_LEVEL: '' }, {}],
  ])('%s', (_, env, changed) => {
    expect(loadConfig(env, CWD)).toEqual({ ...defaults, ...changed } as never)
  })

  test.each<[string, Record<string, string>, { variable: string; message: string }]>([
    [
      'a port that is not a number',
      { CCBROKER_PORT: '80a' },
      { variable: 'CCBROKER_PORT', message: 'CCBROKER_PORT: expected a whole number, got "80a"' },
    ],
    [
      'a port out of range',
      { CCBROKER_PORT: '70000' },
      { variable: 'CCBROKER_PORT', message: 'CCBROKER_PORT: expected 0..65535, got 70000' },
    ],
    [
      'a negative port',
      { CCBROKER_PORT: '-1' },
      { variable: 'CCBROKER_PORT', message: 'CCBROKER_PORT: expected a whole number, got "-1"' },
    ],
    [
      'a JWT secret under 32 bytes',
      { CCBROKER_JWT_SECRET: 'short-secret' },
      {
        variable: 'CCBROKER_JWT_SECRET',
        message: 'CCBROKER_JWT_SECRET: must be at least 32 bytes',
      },
    ],
    [
      'a database URL without a JWT secret',
      { CCBROKER_DATABASE_URL: 'postgres://db/cc' },
      {
        variable: 'CCBROKER_JWT_SECRET',
        message:
          'CCBROKER_JWT_SECRET: required with CCBROKER_DATABASE_URL: every replica must sign worker tokens with the same secret',
      },
    ],
    [
      'an unknown log level',
      { CCBROKER_LOG_LEVEL: 'verbose' },
      {
        variable: 'CCBROKER_LOG_LEVEL',
        message: 'CCBROKER_LOG_LEVEL: expected one of debug, info, warn, error, silent',
      },
    ],
    [
      'a database URL that is not a URL',
      { CCBROKER_DATABASE_URL: 'db.example.com:5432', CCBROKER_JWT_SECRET: SECRET },
      {
        variable: 'CCBROKER_DATABASE_URL',
        message:
          'CCBROKER_DATABASE_URL: expected a postgres: or postgresql: URL, got db.example.com:',
      },
    ],
    [
      'a database URL that does not parse',
      { CCBROKER_DATABASE_URL: 'not a url', CCBROKER_JWT_SECRET: SECRET },
      { variable: 'CCBROKER_DATABASE_URL', message: 'CCBROKER_DATABASE_URL: expected a URL' },
    ],
    [
      'a database URL of another scheme',
      { CCBROKER_DATABASE_URL: 'mysql://db/cc', CCBROKER_JWT_SECRET: SECRET },
      {
        variable: 'CCBROKER_DATABASE_URL',
        message: 'CCBROKER_DATABASE_URL: expected a postgres: or postgresql: URL, got mysql:',
      },
    ],
    [
      'a public URL that is not http(s)',
      { CCBROKER_PUBLIC_URL: 'ftp://broker' },
      {
        variable: 'CCBROKER_PUBLIC_URL',
        message: 'CCBROKER_PUBLIC_URL: expected a http: or https: URL, got ftp:',
      },
    ],
    [
      'an API key under 16 characters',
      { CCBROKER_API_KEYS: 'key-aaaaaaaaaaaaaaaa,short' },
      {
        variable: 'CCBROKER_API_KEYS',
        message: 'CCBROKER_API_KEYS: every key must be at least 16 characters',
      },
    ],
    [
      'a non-loopback address without API keys',
      { CCBROKER_HOST: '0.0.0.0' },
      {
        variable: 'CCBROKER_API_KEYS',
        message:
          'CCBROKER_API_KEYS: required when listening on 0.0.0.0, which is not a loopback ' +
          'address: anyone who reaches it could run agent turns. Set CCBROKER_API_KEYS, listen ' +
          'on 127.0.0.1, or set CCBROKER_ALLOW_NO_AUTH=true if the network itself is trusted',
      },
    ],
    [
      'a CORS origin with a path',
      { CCBROKER_CORS_ORIGINS: 'https://app.example/ui' },
      {
        variable: 'CCBROKER_CORS_ORIGINS',
        message:
          'CCBROKER_CORS_ORIGINS: "https://app.example/ui" is not an origin; give scheme, host ' +
          'and port only, e.g. https://app.example',
      },
    ],
    [
      'an SSE buffer of zero',
      { CCBROKER_SSE_BUFFER: '0' },
      {
        variable: 'CCBROKER_SSE_BUFFER',
        message: 'CCBROKER_SSE_BUFFER: expected 1..1000000, got 0',
      },
    ],
    [
      'an unknown worker transport',
      { CCBROKER_WORKER_TRANSPORT: 'grpc' },
      {
        variable: 'CCBROKER_WORKER_TRANSPORT',
        message: 'CCBROKER_WORKER_TRANSPORT: expected ccr or stdio, got "grpc"',
      },
    ],
    [
      'a worker env pair without =',
      { CCBROKER_WORKER_ENV: 'A=1,B' },
      {
        variable: 'CCBROKER_WORKER_ENV',
        message: 'CCBROKER_WORKER_ENV: expected KEY=VALUE, got "B"',
      },
    ],
    [
      'CCBROKER_WORKER_ENV that is not valid JSON',
      { CCBROKER_WORKER_ENV: '{"A":' },
      { variable: 'CCBROKER_WORKER_ENV', message: 'CCBROKER_WORKER_ENV: is not valid JSON' },
    ],
    [
      'CCBROKER_WORKER_ENV with a non-string value',
      { CCBROKER_WORKER_ENV: '{"A":1}' },
      {
        variable: 'CCBROKER_WORKER_ENV',
        message: 'CCBROKER_WORKER_ENV: value of A must be a string',
      },
    ],
    [
      'an IM bridge URL without its secret',
      { CCBROKER_IMBRIDGE_URL: 'https://im.example.com' },
      {
        variable: 'CCBROKER_IMBRIDGE_SECRET',
        message: 'CCBROKER_IMBRIDGE_SECRET: required with CCBROKER_IMBRIDGE_URL',
      },
    ],
    [
      'an unknown permission policy',
      { CCBROKER_PERMISSION_POLICY: 'yolo' },
      {
        variable: 'CCBROKER_PERMISSION_POLICY',
        message: 'CCBROKER_PERMISSION_POLICY: expected bypass, allowlist or ask, got "yolo"',
      },
    ],
    [
      'a tool-search switch that is not a boolean',
      { CCBROKER_ENABLE_TOOL_SEARCH: 'maybe' },
      {
        variable: 'CCBROKER_ENABLE_TOOL_SEARCH',
        message: 'CCBROKER_ENABLE_TOOL_SEARCH: expected true or false, got "maybe"',
      },
    ],
    [
      'an unknown workspace store',
      { CCBROKER_WORKSPACE_STORE: 's3' },
      {
        variable: 'CCBROKER_WORKSPACE_STORE',
        message: 'CCBROKER_WORKSPACE_STORE: expected local or openviking, got "s3"',
      },
    ],
    [
      'a workspace budget that is not an amount',
      { CCBROKER_WORKSPACE_BUDGET_USD: '-3' },
      {
        variable: 'CCBROKER_WORKSPACE_BUDGET_USD',
        message:
          'CCBROKER_WORKSPACE_BUDGET_USD: expected an amount in USD (a number ≥ 0), got "-3"',
      },
    ],
    [
      'the OpenViking store without its URL',
      { CCBROKER_WORKSPACE_STORE: 'openviking' },
      {
        variable: 'CCBROKER_OPENVIKING_URL',
        message: 'CCBROKER_OPENVIKING_URL: required with CCBROKER_WORKSPACE_STORE=openviking',
      },
    ],
    [
      'an OpenViking root that is not a viking:// URI',
      { CCBROKER_OPENVIKING_URL: 'http://viking:1933', CCBROKER_OPENVIKING_ROOT_URI: '/resources' },
      {
        variable: 'CCBROKER_OPENVIKING_ROOT_URI',
        message: 'CCBROKER_OPENVIKING_ROOT_URI: expected a viking:// URI',
      },
    ],
  ])('%s → a ConfigError naming the variable', (_, env, expected) => {
    expect(configError(env)).toEqual(expected)
  })

  test('no error message repeats a secret, a key or a database password', () => {
    const leaks = [
      configError({ CCBROKER_JWT_SECRET: 'tiny-secret-value' }),
      configError({ CCBROKER_API_KEYS: 'short-key-value' }),
      configError({
        CCBROKER_DATABASE_URL: 'pg://user:hunter2@db/cc',
        CCBROKER_JWT_SECRET: SECRET,
      }),
    ].filter((e) => /tiny-secret-value|short-key-value|hunter2/.test(e.message))
    expect(leaks).toEqual([])
  })
})

test('the README’s configuration table lists every CCBROKER_* variable config.ts reads', async () => {
  const root = new URL('..', import.meta.url)
  const read = async (path: string) => Bun.file(new URL(path, root)).text()
  const names = (text: string, pattern: RegExp) => [...new Set(text.match(pattern))].sort()
  expect(names(await read('README.md'), /(?<=^\| `)CCBROKER_[A-Z_]+(?=`)/gm)).toEqual(
    names(await read('src/config.ts'), /CCBROKER_[A-Z_]+/g),
  )
})
