// Readers of CCBROKER_* values: each names the variable when the value is malformed.

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`)
    this.name = 'ConfigError'
  }
}

export type Env = Record<string, string | undefined>

export function str(env: Env, name: string): string | null {
  const v = env[name]?.trim()
  return v ? v : null
}

export function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = str(env, name)
  if (raw === null) return fallback
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `expected a whole number, got "${raw}"`)
  const n = Number(raw)
  if (n < min || n > max) throw new ConfigError(name, `expected ${min}..${max}, got ${n}`)
  return n
}

export function url(env: Env, name: string, protocols: readonly string[]): string | null {
  const raw = str(env, name)
  if (raw === null) return null
  let parsed: URL
  try {
    parsed = new URL(raw)
  } catch {
    throw new ConfigError(name, 'expected a URL')
  }
  if (!protocols.includes(parsed.protocol))
    throw new ConfigError(name, `expected a ${protocols.join(' or ')} URL, got ${parsed.protocol}`)
  return raw.replace(/\/+$/, '')
}

export function parseWorkerEnv(raw: string | null): Record<string, string> {
  const out: Record<string, string> = {}
  if (raw === null) return out
  if (raw.startsWith('{')) {
    let parsed: unknown
    try {
      parsed = JSON.parse(raw)
    } catch {
      throw new ConfigError('CCBROKER_WORKER_ENV', 'is not valid JSON')
    }
    for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
      if (typeof v !== 'string')
        throw new ConfigError('CCBROKER_WORKER_ENV', `value of ${k} must be a string`)
      out[k] = v
    }
    return out
  }
  for (const pair of raw.split(',').filter((p) => p.trim())) {
    const i = pair.indexOf('=')
    if (i <= 0) throw new ConfigError('CCBROKER_WORKER_ENV', `expected KEY=VALUE, got "${pair}"`)
    out[pair.slice(0, i).trim()] = pair.slice(i + 1)
  }
  return out
}

export function list(env: Env, name: string): string[] {
  return (str(env, name) ?? '')
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean)
}

export function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = str(env, name)
  if (raw === null) return fallback
  if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true
  if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false
  throw new ConfigError(name, `expected true or false, got "${raw}"`)
}
