// Benchmark of follow-up turns: warm workers (CCBROKER_WORKER_IDLE_MS=60000) against a process
// per turn (0), alternated round by round in one run, with real Claude Code against an instant
// fake model and with the scripted fake worker (the broker's own time). Also: cancel of a running
// turn, and the memory of an idle warm worker. Prints figures and a markdown table; asserts
// nothing.
//
//   bun scripts/bench/warm-turns.ts [--turns 15] [--rounds 2] [--transport stdio|ccr]
//                                   [--claude <bin>] [--cancels 5]
//
//   POST → done         POST /api/turns sent → its `done` frame read
//   POST → first text   → the first frame carrying assistant text (a partial message or the message)
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { BrokerEvent } from '../../src/client/index.ts'
import { lastPrompt, startFakeAnthropic } from '../../src/testing/fakes/anthropic.ts'
import { startTestBroker } from '../../src/testing/test-broker.ts'
import { loadText, startLoadMeter } from './machine.ts'
import { markdownTable, mib, ms, percentiles } from './stats.ts'

const ROOT = resolve(import.meta.dir, '../..')
const { values: args } = parseArgs({
  options: {
    turns: { type: 'string', default: '15' },
    rounds: { type: 'string', default: '2' },
    transport: { type: 'string', default: 'stdio' },
    claude: { type: 'string' },
    cancels: { type: 'string', default: '5' },
  },
})
const turns = Number(args.turns)
const rounds = Number(args.rounds)
const cancels = Number(args.cancels)
const transport = args.transport as 'stdio' | 'ccr'
const version = transport === 'ccr' ? '2.1.120' : '2.1.332'
const claude = args.claude ?? resolve(ROOT, '.cache/claude', version, 'node_modules/.bin/claude')
if (!existsSync(claude)) throw new Error(`no Claude Code at ${claude}: npm run fetch-claude`)
const say = (s: string) => console.log(s)

await using model = startFakeAnthropic({ reply: (prompt) => `You said: ${prompt}` })
const modelEnv = { ANTHROPIC_BASE_URL: model.url, ANTHROPIC_API_KEY: 'sk-ant-bench' }

const isText = (e: BrokerEvent) => {
  const p = e.payload as any
  if (p.type === 'stream_event') return p.event?.delta?.type === 'text_delta'
  return p.type === 'assistant' && p.message?.content?.some((b: any) => b.type === 'text')
}

interface Timing {
  done: number
  firstText: number | null
}

async function turn(
  b: Awaited<ReturnType<typeof startTestBroker>>,
  sessionId: string,
  text: string,
): Promise<Timing> {
  const t0 = performance.now()
  let firstText: number | null = null
  let state = ''
  for await (const e of b.client.streamTurn({
    sessionId,
    workspaceId: 'ws-bench',
    message: text,
  })) {
    if (firstText === null && isText(e)) firstText = performance.now() - t0
    if (e.event_type === 'done') state = String((e.payload as any).state)
  }
  if (state !== 'done') throw new Error(`turn ended ${state}`)
  return { done: performance.now() - t0, firstText }
}

/** The RSS of a process and everything in its process group, from /proc. */
function groupRss(pgid: number): number {
  let total = 0
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[2]) !== pgid) continue
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${name}/status`, 'utf8'))
      if (rss) total += Number(rss[1]) * 1024
    } catch {
      // Gone meanwhile.
    }
  }
  return total
}

/** Process groups led by children of this process: the brokers' workers. */
function workerGroups(): number[] {
  const out: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[1]) === process.pid && Number(fields[2]) === Number(name))
        out.push(Number(name))
    } catch {
      // Gone meanwhile.
    }
  }
  return out
}

type Mode = 'warm' | 'cold'
const idleOf = (mode: Mode) => (mode === 'warm' ? '60000' : '0')

const meter = startLoadMeter()
const real: Record<Mode, Timing[]> = { warm: [], cold: [] }
const scripted: Record<Mode, number[]> = { warm: [], cold: [] }
const firstTurns: number[] = []
let carried = true
let rssIdle: number[] = []

for (let r = 0; r < rounds; r++) {
  const order: Mode[] = r % 2 === 0 ? ['warm', 'cold'] : ['cold', 'warm']
  for (const mode of order) {
    // Real Claude Code, instant model.
    {
      await using b = await startTestBroker({
        transport,
        config: { CCBROKER_WORKER_IDLE_MS: idleOf(mode), CCBROKER_LOG_LEVEL: 'silent' },
        worker: { claude, env: modelEnv },
      })
      const sessionId = `bench-${mode}-${r}`
      firstTurns.push((await turn(b, sessionId, 'first message')).done)
      for (let i = 0; i < turns; i++) {
        real[mode].push(await turn(b, sessionId, `message ${i}`))
        // The conversation carries over: this turn's request holds the turn before.
        const last = model.messageRequests().at(-1)!
        const prior = i === 0 ? 'first message' : `message ${i - 1}`
        if (
          !JSON.stringify(last.body).includes(prior) ||
          !lastPrompt(last).includes(`message ${i}`)
        )
          carried = false
      }
      if (mode === 'warm') rssIdle = workerGroups().map(groupRss)
    }
    // The scripted worker (a Bun process answering at once): the broker's own time per turn.
    {
      await using b = await startTestBroker({
        transport,
        config: { CCBROKER_WORKER_IDLE_MS: idleOf(mode), CCBROKER_LOG_LEVEL: 'silent' },
      })
      const sessionId = `bench-scripted-${mode}-${r}`
      await turn(b, sessionId, 'first')
      for (let i = 0; i < turns; i++) scripted[mode].push((await turn(b, sessionId, `m${i}`)).done)
    }
  }
}

// Cancel of a running turn (warm): the model's answer is held, the turn is cancelled mid-answer.
const cancelMs: number[] = []
{
  await using b = await startTestBroker({
    transport,
    config: { CCBROKER_WORKER_IDLE_MS: '60000', CCBROKER_LOG_LEVEL: 'silent' },
    worker: { claude, env: modelEnv },
  })
  const sessionId = 'bench-cancel'
  await turn(b, sessionId, 'warm up')
  for (let i = 0; i < cancels; i++) {
    const held = Promise.withResolvers<void>()
    model.script({ text: 'An answer that is never finished.', hold: held.promise })
    const before = model.messageRequests().length
    const { turnId } = await b.client.enqueueTurn({
      sessionId,
      workspaceId: 'ws-bench',
      message: `long ${i}`,
    })
    while (model.messageRequests().length === before) await Bun.sleep(5)
    const t0 = performance.now()
    await b.client.cancelTurn(turnId)
    for await (const e of b.client.turnEvents(turnId)) if (e.event_type === 'done') break
    cancelMs.push(performance.now() - t0)
    held.resolve()
  }
}
const load = meter()

const row = (what: string, xs: number[]) => {
  const [p50, p99] = percentiles([...xs], [50, 99])
  return [what, `${ms(p50!)} / ${ms(p99!)}`]
}
const rows: string[][] = [
  row(
    `first turn of a session, POST → done (${claude.includes(version) ? version : 'claude'})`,
    firstTurns,
  ),
  row(
    'follow-up, process per turn: POST → done',
    real.cold.map((t) => t.done),
  ),
  row(
    'follow-up, warm worker: POST → done',
    real.warm.map((t) => t.done),
  ),
  row(
    'follow-up, process per turn: POST → first text',
    real.cold.map((t) => t.firstText ?? Number.NaN),
  ),
  row(
    'follow-up, warm worker: POST → first text',
    real.warm.map((t) => t.firstText ?? Number.NaN),
  ),
  row('scripted worker, process per turn: POST → done', scripted.cold),
  row('scripted worker, warm: POST → done', scripted.warm),
  row('cancel of a running turn (warm): POST cancel → done', cancelMs),
  ['conversation carried over every follow-up', carried ? 'yes' : 'NO'],
  [
    'RSS of an idle warm worker (process group)',
    rssIdle.length ? rssIdle.map((x) => mib(x)).join(', ') : 'none found',
  ],
]
say(`\n${transport}, ${rounds} rounds × ${turns} follow-ups per mode, alternated${loadText(load)}`)
say(markdownTable(['measure', 'p50 / p99'], rows))
