// POST /api/v1/content/batch-write of the fake OpenViking server, per server version: the
// Pydantic body model (v0.4.12–v0.4.15: a `precondition` per operation; v0.4.16: a `mode`), the
// limits, and the application sorted by URI that stops at the first failed write.
import type { ValidationIssue } from './openviking-api.ts'
import {
  ApiError,
  canonical,
  derivedNames,
  isObject,
  nameOf,
  notFound,
  parentOf,
  validationError,
  versionAtLeast,
} from './openviking-api.ts'

export interface BatchState {
  version: string
  files: Map<string, Uint8Array>
  dirs: Set<string>
  mkdirp(uri: string): void
  /** Every URI written, in the order written. */
  writes: string[]
  /** The failure injected for writing `uri`, used up by this call. */
  takeWriteFailure(uri: string): ApiError | undefined
}

const MiB = 1024 * 1024
const utf8 = new TextEncoder()
const modes = ['replace', 'append', 'create', 'upsert']
const kinds = ['create_if_absent', 'replace_if_hash']
const sha256 = (bytes: Uint8Array) =>
  `sha256:${new Bun.CryptoHasher('sha256').update(bytes).digest('hex')}`
const invalid = (message: string) => new ApiError(400, 'INVALID_ARGUMENT', message)
const exhausted = (message: string) => new ApiError(429, 'RESOURCE_EXHAUSTED', message)
const literal = (values: string[]) =>
  `Input should be ${values
    .map((v) => `'${v}'`)
    .join(', ')
    .replace(/, ([^,]*)$/, ' or $1')}`

/** Pydantic's errors for one object: declared fields in order, then extra keys. */
function checkFields(
  value: unknown,
  loc: string[],
  model: string,
  fields: Record<string, (v: unknown, loc: string[]) => ValidationIssue[]>,
  required: string[],
): ValidationIssue[] {
  if (!isObject(value))
    return [
      {
        loc,
        message: `Input should be a valid dictionary or instance of ${model}`,
        type: 'model_type',
      },
    ]
  const issues: ValidationIssue[] = []
  for (const [key, check] of Object.entries(fields)) {
    if (value[key] !== undefined) issues.push(...check(value[key], [...loc, key]))
    else if (required.includes(key))
      issues.push({ loc: [...loc, key], message: 'Field required', type: 'missing' })
  }
  for (const key of Object.keys(value))
    if (!(key in fields))
      issues.push({
        loc: [...loc, key],
        message: 'Extra inputs are not permitted',
        type: 'extra_forbidden',
      })
  return issues
}

const str =
  (nullable: boolean) =>
  (v: unknown, loc: string[]): ValidationIssue[] =>
    typeof v === 'string' || (nullable && v === null)
      ? []
      : [{ loc, message: 'Input should be a valid string', type: 'string_type' }]
const oneOf =
  (values: string[]) =>
  (v: unknown, loc: string[]): ValidationIssue[] =>
    values.includes(v as string) ? [] : [{ loc, message: literal(values), type: 'literal_error' }]
const valueError = (loc: string[], message: string): ValidationIssue => ({
  loc,
  message: `Value error, ${message}`,
  type: 'value_error',
})

function checkPrecondition(v: unknown, loc: string[]): ValidationIssue[] {
  const fields = { kind: oneOf(kinds), base_hash: str(true) }
  const issues = checkFields(v, loc, 'BatchWritePrecondition', fields, ['kind'])
  if (issues.length > 0 || !isObject(v)) return issues
  if (v.kind === 'replace_if_hash' && !v.base_hash)
    return [valueError(loc, 'base_hash is required for replace_if_hash')]
  if (v.kind === 'create_if_absent' && v.base_hash != null)
    return [valueError(loc, 'base_hash is not allowed for create_if_absent')]
  return []
}

/** The body model of `version`: what FastAPI answers before the route runs. */
function checkBody(version: string, body: unknown): ValidationIssue[] {
  // v0.4.16 replaced the per-operation precondition with a write mode.
  const hasMode = versionAtLeast(version, '0.4.16')
  const opFields = {
    uri: str(false),
    content: str(true),
    content_base64: str(true),
    ...(hasMode ? { mode: oneOf(modes) } : { precondition: checkPrecondition }),
  }
  const checkOp = (op: unknown, loc: string[]) => {
    const required = hasMode ? ['uri'] : ['uri', 'precondition']
    const issues = checkFields(op, loc, 'BatchWriteOperation', opFields, required)
    if (issues.length > 0 || !isObject(op)) return issues
    return (op.content == null) === (op.content_base64 == null)
      ? [valueError(loc, 'exactly one of content or content_base64 is required')]
      : []
  }
  const operations = (v: unknown, loc: string[]): ValidationIssue[] =>
    Array.isArray(v)
      ? v.flatMap((op, i) => checkOp(op, [...loc, String(i)]))
      : [{ loc, message: 'Input should be a valid list', type: 'list_type' }]
  const bool = (v: unknown, loc: string[]): ValidationIssue[] =>
    typeof v === 'boolean'
      ? []
      : [{ loc, message: 'Input should be a valid boolean', type: 'bool_type' }]
  const fields = {
    root_uri: str(false),
    operations,
    wait: bool,
    timeout: (v: unknown, loc: string[]): ValidationIssue[] =>
      v === null || typeof v === 'number'
        ? []
        : [{ loc, message: 'Input should be a valid number', type: 'float_type' }],
    telemetry: () => [],
  }
  return checkFields(body, ['body'], 'BatchWriteRequest', fields, ['root_uri', 'operations'])
}

interface Planned {
  uri: string
  bytes: Uint8Array
  mode: string
  precondition?: { kind: string; base_hash?: string | null }
}

/** What the route answers; throws the server's error envelope as an ApiError. */
export function batchWrite(state: BatchState, body: unknown) {
  const { files, dirs } = state
  const issues = checkBody(state.version, body)
  if (issues.length > 0 || !isObject(body)) throw validationError(issues)
  const root = canonical(String(body.root_uri), true)
  if (root.split('/').length <= 3)
    throw invalid('batch-write root must be inside a resource directory')
  if (files.has(root)) throw invalid(`batch-write root must be an existing directory: ${root}`)
  if (!dirs.has(root)) throw notFound(root, 'directory')
  const ops = body.operations as Record<string, unknown>[]
  // 128 operations until v0.4.13, 256 from v0.4.14.
  const maxOps = versionAtLeast(state.version, '0.4.14') ? 256 : 128
  if (ops.length === 0) throw invalid('batch-write operations must not be empty')
  if (ops.length > maxOps) throw exhausted(`batch-write supports at most ${maxOps} operations`)
  const seen = new Set<string>()
  let total = 0
  const planned: Planned[] = ops.map((op) => {
    const uri = canonical(String(op.uri), true)
    if (seen.has(uri)) throw invalid(`duplicate batch-write target: ${uri}`)
    seen.add(uri)
    if (!uri.startsWith(`${root}/`)) throw invalid(`batch-write target is outside root_uri: ${uri}`)
    if (derivedNames.has(nameOf(uri)))
      throw invalid(`cannot write derived semantic file directly: ${uri}`)
    const mode = String(op.mode ?? 'replace')
    let bytes: Uint8Array
    if (op.content_base64 != null) {
      const text = String(op.content_base64)
      const decoded = Buffer.from(text, 'base64')
      // Strict: only canonical, padded base64 survives a decode/encode round trip unchanged.
      if (decoded.toString('base64') !== text)
        throw invalid(`batch-write content_base64 is invalid: ${uri}`)
      bytes = new Uint8Array(decoded.buffer, decoded.byteOffset, decoded.byteLength)
    } else bytes = utf8.encode(String(op.content))
    if (bytes.length > 8 * MiB) throw exhausted(`batch-write file exceeds size limit: ${uri}`)
    total += bytes.length
    if (total > 16 * MiB) throw exhausted('batch-write total content exceeds size limit')
    if (op.content_base64 != null && mode === 'append')
      throw invalid(`batch-write append does not support binary content: ${uri}`)
    const precondition = op.precondition as Planned['precondition']
    return { uri, bytes, mode, ...(precondition ? { precondition } : {}) }
  })
  // OpenViking v0.4.12–v0.4.16 check every operation, then apply them sorted by URI.
  planned.sort((a, b) => (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0))
  const result = {
    root_uri: root,
    created: [] as string[],
    updated: [] as string[],
    unchanged: [] as string[],
  }
  const pending: Planned[] = []
  for (const op of planned) {
    const old = files.get(op.uri)
    if (dirs.has(op.uri)) throw invalid(`batch-write target must be a file: ${op.uri}`)
    if (op.precondition) {
      // v0.4.12–v0.4.15: identical content is left alone; a failed precondition writes nothing.
      if (old && Buffer.compare(old, op.bytes) === 0) {
        result.unchanged.push(op.uri)
        continue
      }
      const { kind, base_hash } = op.precondition
      const unmet =
        kind === 'create_if_absent'
          ? old && 'target already exists'
          : !old
            ? 'target does not exist'
            : sha256(old) !== base_hash && 'content hash changed'
      if (unmet) {
        const which = kind === 'create_if_absent' ? 'create' : 'replace'
        const message = `Batch write ${which} precondition failed; ${unmet}.`
        throw new ApiError(409, 'CONFLICT', message, { resource: op.uri })
      }
    } else {
      const mode = op.mode === 'upsert' ? (old ? 'replace' : 'create') : op.mode
      if (mode === 'create' && old)
        throw new ApiError(409, 'ALREADY_EXISTS', `File already exists: ${op.uri}`)
      if ((mode === 'replace' || mode === 'append') && !old) throw notFound(op.uri, 'file')
    }
    pending.push(op)
  }
  let failed: ApiError | undefined
  for (const { uri, bytes, mode } of pending) {
    // No transaction: the writes before a failed one stay.
    failed = state.takeWriteFailure(uri)
    if (failed) break
    const old = files.get(uri)
    state.mkdirp(parentOf(uri))
    files.set(uri, new Uint8Array(mode === 'append' && old ? Buffer.concat([old, bytes]) : bytes))
    state.writes.push(uri)
    ;(old ? result.updated : result.created).push(uri)
    // OpenViking summarises every directory written to.
    for (let dir = parentOf(uri); dir.length >= root.length; dir = parentOf(dir)) {
      files.set(`${dir}/.abstract.md`, utf8.encode(`summary of ${nameOf(dir)}`))
      files.set(`${dir}/.overview.md`, utf8.encode(`# ${nameOf(dir)}\n`))
    }
  }
  if (result.created.length + result.updated.length > 0)
    files.set(`${root}/.relations.json`, utf8.encode('[]'))
  if (failed) throw failed
  return { ...result, semantic_status: 'queued', vector_status: 'queued', queue_status: null }
}
