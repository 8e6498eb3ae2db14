import { hostname } from 'node:os'
import { isAlive } from '../processes.ts'

/** A broker's identity on its leases: host, pid and a nonce per start. */
export const newOwnerId = () => `${hostname()}/${process.pid}/${crypto.randomUUID().slice(0, 8)}`

/** Same host and a dead pid: that broker is gone, its leases need not run out first. */
export function ownerIsDead(owner: string): boolean {
  const [host, pid] = owner.split('/')
  return host === hostname() && !isAlive(Number(pid))
}
