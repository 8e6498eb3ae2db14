export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent'
export type LogFields = Record<string, unknown>

export interface Logger {
  debug(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
  child(fields: LogFields): Logger
}

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 }

/** JSON lines on stderr, one object per record; `child` adds fields to every record. */
export function createLogger(
  level: LogLevel,
  base: LogFields = {},
  write: (line: string) => void = (line) => process.stderr.write(line),
): Logger {
  const min = rank[level]
  const emit = (lvl: Exclude<LogLevel, 'silent'>, msg: string, fields?: LogFields) => {
    if (rank[lvl] < min) return
    const record: LogFields = {
      time: new Date().toISOString(),
      level: lvl,
      msg,
      ...base,
      ...fields,
    }
    const err = record.err
    if (err instanceof Error)
      record.err = { name: err.name, message: err.message, stack: err.stack }
    write(JSON.stringify(record) + '\n')
  }
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(level, { ...base, ...fields }, write),
  }
}

const JWT = /\beyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/g

/**
 * A logger that writes through `inner` with every secret (and anything shaped like a JWT, such
 * as a worker token) replaced by `[redacted]`: no key, token or secret reaches a log line, even
 * from a worker's stderr.
 */
export function redactingLogger(inner: Logger, secrets: readonly string[]): Logger {
  const values = [...new Set(secrets.filter((s) => s.length >= 8))].sort(
    (a, b) => b.length - a.length,
  )
  const scrub = (text: string) => {
    let out = text.replace(JWT, '[redacted]')
    for (const v of values) out = out.replaceAll(v, '[redacted]')
    return out
  }
  const clean = (fields?: LogFields): LogFields | undefined => {
    if (!fields) return fields
    const err = fields.err
    const plain =
      err instanceof Error
        ? { ...fields, err: { name: err.name, message: err.message, stack: err.stack } }
        : fields
    const json = JSON.stringify(plain)
    const scrubbed = scrub(json)
    return scrubbed === json ? fields : (JSON.parse(scrubbed) as LogFields)
  }
  return {
    debug: (m, f) => inner.debug(scrub(m), clean(f)),
    info: (m, f) => inner.info(scrub(m), clean(f)),
    warn: (m, f) => inner.warn(scrub(m), clean(f)),
    error: (m, f) => inner.error(scrub(m), clean(f)),
    child: (fields) => redactingLogger(inner.child(clean(fields) ?? {}), values),
  }
}
