import type { Db } from '../db/handle.ts'
import {
  bumpSessionEpoch,
  findSessionByExternalId,
  getSession,
  insertSession,
  listSessions,
} from '../db/repos/sessions.ts'
import { insertWorker } from '../db/repos/workers.ts'
import type { SessionRow } from '../db/schema.ts'
import { ConflictError, NotFoundError } from '../errors.ts'
import { newSessionId } from '../ids.ts'
import { signWorkerToken } from '../auth/worker-token.ts'
import type { Generations } from './generations.ts'

export interface CreateSessionInput {
  id?: string
  workspaceId: string
  title?: string
  externalId?: string | null
  source?: string
  tags?: string[]
  budgetUsd?: number | null
}

export interface BridgeResult {
  workerJwt: string
  apiBaseUrl: string
  expiresIn: number
  workerEpoch: number
  session: SessionRow
}

export function createSessionService(deps: {
  db: Db
  tokenKey: Uint8Array
  /** Lifetime of an externally bridged worker's token. */
  tokenTtlSeconds: number
  publicUrl: () => string
  generations: Generations
  /** Why sessions cannot be forked here (the ccr transport), or null. */
  forkRefusal?: string | null
}) {
  const { db } = deps

  async function require(id: string): Promise<SessionRow> {
    const session = await getSession(db, id)
    if (!session) throw new NotFoundError(`session ${id} not found`)
    return session
  }

  return {
    get: require,
    find: (id: string) => getSession(db, id),

    /**
     * Creates a session. With an `externalId` already used in the workspace, answers that
     * session instead (created: false), so callers can map their own ids without a lookup.
     */
    async create(input: CreateSessionInput): Promise<{ session: SessionRow; created: boolean }> {
      if (input.externalId) {
        const existing = await findSessionByExternalId(db, input.workspaceId, input.externalId)
        if (existing) return { session: existing, created: false }
      }
      const row = await insertSession(db, {
        id: input.id ?? newSessionId(),
        workspaceId: input.workspaceId,
        title: input.title ?? '',
        externalId: input.externalId ?? null,
        source: input.source ?? 'api',
        tags: input.tags ?? [],
        budgetUsd: input.budgetUsd ?? null,
      })
      if (row) return { session: row, created: true }
      // Lost a race: the id or the external id was taken in between.
      if (input.externalId) {
        const existing = await findSessionByExternalId(db, input.workspaceId, input.externalId)
        if (existing) return { session: existing, created: false }
      }
      const other = input.id ? await getSession(db, input.id) : null
      if (other && other.workspaceId !== input.workspaceId)
        throw new ConflictError(`session ${input.id} exists in another workspace`)
      if (other) return { session: other, created: false }
      throw new ConflictError('session could not be created; retry')
    },

    /**
     * A new session in the source's workspace whose first turn resumes the source's Claude
     * Code conversation with `--fork-session`; from then on the two go their own ways. The
     * source's events are not copied.
     */
    async fork(id: string, input: { sessionId?: string; title?: string }): Promise<SessionRow> {
      if (deps.forkRefusal) throw new ConflictError(deps.forkRefusal)
      const source = await require(id)
      const row = await insertSession(db, {
        id: input.sessionId ?? newSessionId(),
        workspaceId: source.workspaceId,
        title: input.title ?? source.title,
        source: 'fork',
        tags: source.tags,
        forkedFrom: source.id,
        forkSourceClaudeSessionId: source.claudeSessionId,
      })
      if (!row) throw new ConflictError(`session ${input.sessionId} already exists`)
      return row
    },

    async list(opts: { workspaceId?: string; cursor?: string; limit: number }) {
      const rows = await listSessions(db, {
        workspaceId: opts.workspaceId,
        before: opts.cursor,
        limit: opts.limit + 1,
      })
      const page = rows.slice(0, opts.limit)
      return { data: page, nextCursor: rows.length > opts.limit ? page.at(-1)!.id : null }
    },

    /**
     * Starts a new worker generation: bumps the epoch (fencing every older worker with 409),
     * registers the worker row and issues its token, atomically; then every older generation
     * ends (its open streams too). A worker the broker starts gets a token that lives only as
     * long as its turn may (`ttlSeconds`); an external one the configured lifetime.
     */
    async bridge(id: string, opts: { ttlSeconds?: number } = {}): Promise<BridgeResult> {
      const ttl = opts.ttlSeconds ?? deps.tokenTtlSeconds
      const { epoch, session } = await db.transaction(async (t) => {
        const epoch = await bumpSessionEpoch(t, id)
        if (epoch === null) throw new NotFoundError(`session ${id} not found`)
        await insertWorker(t, id, epoch)
        return { epoch, session: (await getSession(t, id))! }
      })
      await deps.generations.superseded(id, epoch)
      const { token } = await signWorkerToken(
        deps.tokenKey,
        { sid: id, wid: session.workspaceId, epoch },
        ttl,
      )
      return {
        workerJwt: token,
        apiBaseUrl: `${deps.publicUrl()}/v1/sessions/${id}`,
        expiresIn: ttl,
        workerEpoch: epoch,
        session,
      }
    },
  }
}

export type SessionService = ReturnType<typeof createSessionService>
