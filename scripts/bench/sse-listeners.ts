// Child process of ingest.ts: N listeners on GET /v1/sessions/:id/events/stream. Each frame's
// receipt time (this process's performance.now(), taken when its chunk arrived) is stored at
// [listener][event index], the index coming from the event id (payloads.ts). Frames are split on
// the blank line; the event id is read from the data line without a full JSON.parse (it is the
// first key), and every 200th frame is parsed in full to check that shortcut.
import { serveParent, type Message } from './children.ts'
import { uuidIndex } from './payloads.ts'

interface Open {
  url: string
  listeners: number
  events: number
  prefix: string
  warmPrefix: string
  warmEvents: number
}

let times = new Float64Array(0)
let counts: number[] = []
let warmCounts: number[] = []
const stats = { bytes: 0, checked: 0, badFrames: 0, orderErrors: 0, duplicates: 0, ended: 0 }
const controllers: AbortController[] = []
let warmSent = false
let cpuAtWarm = process.cpuUsage()

const send = serveParent(async (m: Message) => {
  if (m.type === 'open') await open(m as unknown as Open)
  else if (m.type === 'finish')
    await finish(m.waitMs as number, m.outFile as string, m.events as number)
})

async function open(o: Open) {
  times = new Float64Array(o.listeners * o.events).fill(NaN)
  counts = Array(o.listeners).fill(0)
  warmCounts = Array(o.listeners).fill(0)
  const connected = Array.from({ length: o.listeners }, (_, l) => listen(o, l))
  await Promise.all(connected)
  send({ type: 'ready' })
}

/** Resolves once the stream's first chunk (the `: connected` preamble) has arrived. */
async function listen(o: Open, l: number): Promise<void> {
  const ac = new AbortController()
  controllers.push(ac)
  const res = await fetch(o.url, { headers: { accept: 'text/event-stream' }, signal: ac.signal })
  if (res.status !== 200) throw new Error(`listener ${l}: HTTP ${res.status}`)
  const reader = res.body!.getReader()
  const first = await reader.read()
  const decoder = new TextDecoder()
  let buffer = decoder.decode(first.value, { stream: true })
  let lastSeq = 0
  let seen = 0
  const onFrame = (frame: string, now: number) => {
    if (frame.startsWith(':')) return
    const at = frame.indexOf('"event_id":"')
    const idLine = frame.startsWith('id: ') ? frame.slice(4, frame.indexOf('\n')) : ''
    if (at < 0 || !idLine) return void stats.badFrames++
    const seq = Number(idLine)
    if (seq <= lastSeq) stats.orderErrors++
    lastSeq = seq
    const eventId = frame.slice(at + 12, at + 48)
    if (++seen % 200 === 0) {
      stats.checked++
      const data = JSON.parse(frame.slice(frame.indexOf('data: ') + 6))
      if (data.event_id !== eventId || data.payload?.uuid !== eventId || data.sequence_num !== seq)
        stats.badFrames++
    }
    const index = uuidIndex(o.prefix, eventId)
    if (index >= 0 && index < o.events) {
      const slot = l * o.events + index
      if (!Number.isNaN(times[slot]!)) return void stats.duplicates++
      times[slot] = now
      counts[l]!++
    } else if (uuidIndex(o.warmPrefix, eventId) >= 0 && ++warmCounts[l]! === o.warmEvents) {
      if (!warmSent && warmCounts.every((c) => c >= o.warmEvents)) {
        warmSent = true
        cpuAtWarm = process.cpuUsage()
        send({ type: 'warm' })
      }
    } else if (index < 0 && uuidIndex(o.warmPrefix, eventId) < 0) stats.badFrames++
  }
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        const now = performance.now()
        stats.bytes += value.byteLength
        buffer += decoder.decode(value, { stream: true })
        let start = 0
        let end: number
        while ((end = buffer.indexOf('\n\n', start)) >= 0) {
          onFrame(buffer.slice(start, end), now)
          start = end + 2
        }
        buffer = buffer.slice(start)
      }
    } catch {
      // Aborted by finish().
    }
    if (!ac.signal.aborted) stats.ended++
  })()
}

async function finish(waitMs: number, outFile: string, events: number) {
  const deadline = performance.now() + waitMs
  while (performance.now() < deadline && counts.some((c) => c < events)) await Bun.sleep(20)
  for (const ac of controllers) ac.abort()
  await Bun.write(outFile, times.buffer)
  const { user, system } = process.cpuUsage(cpuAtWarm)
  send({ type: 'done', counts, ...stats, cpuMs: (user + system) / 1000 })
}
