import type { Database } from '../db/handle.ts'
import type { Bus } from './bus.ts'
import { NOTIFY_CHANNEL } from './log.ts'

/** Feeds other replicas' appends into this process's bus (Postgres only). */
export async function bridgeNotifications(
  database: Database,
  bus: Bus,
  origin: string,
): Promise<void> {
  if (database.driver !== 'postgres') return
  await database.listen(
    NOTIFY_CHANNEL,
    (payload) => {
      try {
        const { s, l, o } = JSON.parse(payload) as { s: string; l: number; o?: string }
        // Our own appends were published in memory; re-reading them would only cost time.
        if (o !== origin) bus.notify(s, l)
      } catch {
        // Not ours: some other client notified on the channel.
      }
    },
    () => bus.resyncAll(),
  )
}
