/**
 * Recently seen event ids per session, bounded both ways: `perSession` ids per session (oldest
 * evicted first, like Claude Code's own BoundedUUIDSet of 2000) and `maxSessions` sessions (least
 * recently used evicted). It only saves database round trips: the unique index is the real guard.
 */
export function createDedup({ perSession = 2000, maxSessions = 10_000 } = {}) {
  const sessions = new Map<string, Set<string>>()

  const setFor = (sessionId: string, create: boolean): Set<string> | undefined => {
    let set = sessions.get(sessionId)
    if (set) {
      sessions.delete(sessionId)
      sessions.set(sessionId, set)
    } else if (create) {
      set = new Set()
      sessions.set(sessionId, set)
      if (sessions.size > maxSessions) sessions.delete(sessions.keys().next().value!)
    }
    return set
  }

  return {
    has: (sessionId: string, eventId: string) => setFor(sessionId, false)?.has(eventId) ?? false,
    add(sessionId: string, eventIds: Iterable<string>) {
      const set = setFor(sessionId, true)!
      for (const id of eventIds) {
        set.delete(id)
        set.add(id)
        if (set.size > perSession) set.delete(set.values().next().value!)
      }
    },
    forget: (sessionId: string) => void sessions.delete(sessionId),
  }
}

export type Dedup = ReturnType<typeof createDedup>
