// Child process of ingest.ts: a worker posting events at a steady rate (open loop: batch i is
// due at start + i × interval whatever the previous responses did, with a bounded number in
// flight). It records when each batch was sent and when its 200 arrived, on this process's clock.
// A broker that cannot keep up does not stretch the run: no batch is sent after `deadlineMs`.
import { serveParent, type Message } from './children.ts'
import { eventsBody, payloads } from './payloads.ts'

interface Run {
  url: string
  token: string
  epoch: number
  claudeSessionId: string
  prefix: string
  batches: number
  batchSize: number
  intervalMs: number
  maxInFlight: number
  deadlineMs: number
}

const send = serveParent(async (m: Message) => {
  if (m.type === 'run') send({ type: 'ran', ...(await run(m as unknown as Run)) })
})

async function run(r: Run) {
  const bodies = Array.from({ length: r.batches }, (_, b) =>
    eventsBody(r.epoch, payloads(r.prefix, b * r.batchSize, r.batchSize, r.claudeSessionId)),
  )
  const headers = {
    authorization: `Bearer ${r.token}`,
    'content-type': 'application/json',
    'anthropic-version': '2023-06-01',
  }
  const sentAt = new Float64Array(r.batches).fill(NaN)
  const ackAt = new Float64Array(r.batches).fill(NaN)
  const failures: string[] = []
  let inFlight = 0
  let maxLateMs = 0
  let slot: (() => void) | null = null
  const pending: Promise<void>[] = []
  const cpu0 = process.cpuUsage()
  const start = performance.now() + 5
  let sent = 0
  for (let b = 0; b < r.batches; b++) {
    const due = start + b * r.intervalMs
    const wait = due - performance.now()
    if (wait > 0) await Bun.sleep(wait)
    while (inFlight >= r.maxInFlight) await new Promise<void>((resolve) => (slot = resolve))
    if (performance.now() - start > r.deadlineMs) break
    maxLateMs = Math.max(maxLateMs, performance.now() - due)
    sent++
    inFlight++
    sentAt[b] = performance.now()
    pending.push(
      fetch(r.url, { method: 'POST', headers, body: bodies[b] })
        .then(async (res) => {
          const text = await res.text()
          if (res.status === 200) ackAt[b] = performance.now()
          else if (failures.length < 5)
            failures.push(`batch ${b}: HTTP ${res.status} ${text.slice(0, 200)}`)
        })
        .catch((err) => void (failures.length < 5 && failures.push(`batch ${b}: ${err}`)))
        .finally(() => {
          inFlight--
          slot?.()
          slot = null
        }),
    )
  }
  await Promise.all(pending)
  const elapsedMs = performance.now() - start
  const { user, system } = process.cpuUsage(cpu0)
  const cpuMs = (user + system) / 1000
  return { sent, sentAt: [...sentAt], ackAt: [...ackAt], failures, maxLateMs, elapsedMs, cpuMs }
}
