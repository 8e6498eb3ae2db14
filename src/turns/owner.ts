import { hostname } from 'node:os'
import type { Db } from '../db/handle.ts'
import { isPresenceHeld } from '../db/repos/presence.ts'
import type { Logger } from '../log.ts'
import { isAlive } from '../processes.ts'

/** A broker's identity on its leases: host, pid and a nonce per start. */
export const newOwnerId = () => `${hostname()}/${process.pid}/${crypto.randomUUID().slice(0, 8)}`

/** Same host and a dead pid: that broker is gone, its leases need not run out first. */
export function ownerIsDead(owner: string): boolean {
  const [host, pid] = owner.split('/')
  return host === hostname() && !isAlive(Number(pid))
}

/**
 * How long another broker's presence lock must stay free before its turns are taken: a
 * Postgres restart drops every lock for the moment it takes their holders to re-take them.
 */
const PRESENCE_GRACE_MS = 1_500

/**
 * Which other brokers are gone. PGlite: every other owner (one process per data directory).
 * Postgres: an owner whose presence lock has been free for PRESENCE_GRACE_MS, seen at two
 * checks at least that far apart; a live broker, however slow, holds its lock and is never
 * taken for dead. On this host a dead pid is enough.
 */
export function createOwnerLiveness(deps: {
  db: Db
  self: string
  exclusive: boolean
  presence: boolean
  log: Logger
}) {
  const freeSince = new Map<string, number>()
  return {
    async deadOwners(owners: string[]): Promise<string[]> {
      const others = owners.filter((o) => o !== deps.self)
      if (deps.exclusive) return others
      const dead: string[] = []
      const now = Date.now()
      for (const owner of others) {
        if (ownerIsDead(owner)) {
          dead.push(owner)
          continue
        }
        if (!deps.presence) continue
        if (await isPresenceHeld(deps.db, owner)) {
          if (freeSince.delete(owner)) deps.log.info('a broker is back', { owner })
          deps.log.debug('another broker holds its presence lock', { owner })
          continue
        }
        const since = freeSince.get(owner) ?? now
        freeSince.set(owner, since)
        if (now - since >= PRESENCE_GRACE_MS) dead.push(owner)
      }
      for (const owner of freeSince.keys()) if (!others.includes(owner)) freeSince.delete(owner)
      return dead
    },
  }
}

export type OwnerLiveness = ReturnType<typeof createOwnerLiveness>
