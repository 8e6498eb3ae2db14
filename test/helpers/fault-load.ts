// Load for the fault suite: workers posting event batches to replicas the way Claude Code does
// (the same batch again until a 2xx), and listeners that follow a session across replicas,
// resuming with Last-Event-ID after every dropped connection.
import { createWorkerClient } from './worker-client.ts'

export interface Acked {
  /** Event ids whose batch got a 2xx. */
  ids: Set<string>
  /** Non-2xx answers and network errors seen, by kind (`503`, `network`, …). */
  refusals: Map<string, number>
  /** When each 2xx came (ms since epoch). */
  acks: number[]
}

/**
 * `writers` loops, each posting batches of `batch` events to replicas in turn until `stop()`:
 * a batch that does not get a 2xx is sent again, unchanged, as a CCR v2 worker does.
 */
export function startWriters(opts: {
  urls: string[]
  sessionId: string
  token: string
  epoch: number
  writers: number
  batch: number
}) {
  const acked: Acked = { ids: new Set(), refusals: new Map(), acks: [] }
  let stopping = false
  const loop = async (w: number) => {
    let n = 0
    for (let round = 0; !stopping; round++) {
      const events = Array.from({ length: opts.batch }, () => ({
        payload: {
          type: 'assistant',
          uuid: crypto.randomUUID(),
          message: { role: 'assistant', content: [{ type: 'text', text: `w${w} n${n++}` }] },
        },
      }))
      for (let tries = 0; ; tries++) {
        const url = opts.urls[(w + round + tries) % opts.urls.length]!
        const client = createWorkerClient({
          baseUrl: `${url}/v1/sessions/${opts.sessionId}`,
          token: opts.token,
          epoch: opts.epoch,
        })
        const res = await client.postEvents(events).catch(() => null)
        if (res && res.status < 300) {
          for (const e of events) acked.ids.add(e.payload.uuid)
          acked.acks.push(Date.now())
          break
        }
        const kind = res ? String(res.status) : 'network'
        acked.refusals.set(kind, (acked.refusals.get(kind) ?? 0) + 1)
        if (stopping && tries > 200) break
        await Bun.sleep(50)
      }
    }
  }
  const done = Promise.all(Array.from({ length: opts.writers }, (_, w) => loop(w)))
  return {
    acked,
    async stop() {
      stopping = true
      await done
    },
  }
}

/**
 * A listener of a session's stream that moves to the next replica whenever its connection ends
 * or fails, resuming after the last `id:` it got. Its `seqs` are every frame's id, in order.
 */
export function followAcross(opts: { urls: string[]; sessionId: string }) {
  const seqs: number[] = []
  const ids: string[] = []
  let stopped = false
  let reconnects = 0
  const ac = new AbortController()
  const run = async () => {
    for (let i = 0; !stopped; i++) {
      const url = opts.urls[i % opts.urls.length]!
      const headers: Record<string, string> = { accept: 'text/event-stream' }
      if (seqs.length) headers['last-event-id'] = String(seqs.at(-1))
      try {
        const res = await fetch(`${url}/v1/sessions/${opts.sessionId}/events/stream`, {
          headers,
          signal: ac.signal,
        })
        if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`)
        const decoder = new TextDecoder()
        let buffer = ''
        for await (const chunk of res.body) {
          buffer += decoder.decode(chunk, { stream: true })
          let at: number
          while ((at = buffer.indexOf('\n\n')) >= 0) {
            const frame = buffer.slice(0, at)
            buffer = buffer.slice(at + 2)
            const id = /^id: (\d+)$/m.exec(frame)?.[1]
            const data = /^data: (.*)$/m.exec(frame)?.[1]
            if (id && data) {
              seqs.push(Number(id))
              ids.push((JSON.parse(data) as { event_id: string }).event_id)
            }
          }
        }
      } catch {
        // Dropped or refused: next replica, same cursor.
      }
      if (stopped) break
      reconnects++
      await Bun.sleep(100)
    }
  }
  const done = run()
  return {
    seqs,
    ids,
    reconnects: () => reconnects,
    async stop() {
      stopped = true
      ac.abort()
      await done
    },
  }
}

/** Every event of a session in the log, paged through one replica's API. */
export async function logOf(url: string, sessionId: string) {
  const rows: { sequence_num: number; event_id: string }[] = []
  let since = 0
  for (;;) {
    const res = await fetch(`${url}/v1/sessions/${sessionId}/events?since=${since}&limit=1000`)
    const body = (await res.json()) as {
      data: { sequence_num: number; event_id: string }[]
      has_more: boolean
      next_since: number
    }
    rows.push(...body.data)
    if (!body.has_more) return rows
    since = body.next_since
  }
}
