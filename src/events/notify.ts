import type { Database } from '../db/open.ts'
import type { Bus } from './bus.ts'
import { NOTIFY_CHANNEL } from './log.ts'

/** Feeds other replicas' appends into this process's bus (Postgres only). */
export async function bridgeNotifications(database: Database, bus: Bus): Promise<void> {
  if (database.driver !== 'postgres') return
  await database.listen(
    NOTIFY_CHANNEL,
    (payload) => {
      try {
        const { s, l } = JSON.parse(payload) as { s: string; l: number }
        bus.notify(s, l)
      } catch {
        // Not ours: some other client notified on the channel.
      }
    },
    () => bus.resyncAll(),
  )
}
