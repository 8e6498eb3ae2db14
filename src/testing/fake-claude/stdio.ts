// stdio stream-json: client events are lines on stdin, worker events lines on stdout, and the
// transcript a file under the config directory that --resume reads back.
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import type { Engine } from './engine.ts'
import { die, isObj, say, type Json, type Options } from './options.ts'

export async function runStdio(o: Options, engine: Engine): Promise<void> {
  if (!o.has('-p', '--print'))
    die(1, 'fake-claude: only print mode (-p/--print) or --sdk-url is supported')
  const inputFormat = o.flag('--input-format') ?? 'text'
  const outputFormat = o.flag('--output-format') ?? 'text'
  if (outputFormat === 'stream-json' && !o.has('--verbose'))
    die(1, 'Error: When using --print, --output-format=stream-json requires --verbose')
  if (inputFormat === 'stream-json' && outputFormat !== 'stream-json')
    die(1, 'Error: --input-format=stream-json requires output-format=stream-json.')
  const configDir = o.env.CLAUDE_CONFIG_DIR || join(o.env.HOME || homedir(), '.claude')
  const file = join(
    configDir,
    'projects',
    process.cwd().replace(/[^A-Za-z0-9]/g, '-'),
    `${o.sessionId}.jsonl`,
  )
  if (o.forkOf) {
    // --fork-session: the source's entries are copied under the new id; the source stays as is.
    const source = join(dirname(file), `${o.forkOf}.jsonl`)
    if (!existsSync(source)) die(1, `No conversation found with session ID: ${o.forkOf}`)
    if (existsSync(file)) die(1, `Error: Session ID ${o.sessionId} is already in use.`)
    mkdirSync(dirname(file), { recursive: true })
    for (const line of readFileSync(source, 'utf8').split('\n')) {
      if (!line.trim()) continue
      const entry = { ...JSON.parse(line), sessionId: o.sessionId }
      engine.learn(entry)
      appendFileSync(file, `${JSON.stringify(entry)}\n`)
    }
    say(`fake-claude forked ${o.forkOf} into ${o.sessionId}: ${engine.history()} user messages`)
  } else if (o.resumed) {
    if (!existsSync(file)) die(1, `No conversation found with session ID: ${o.sessionId}`)
    for (const line of readFileSync(file, 'utf8').split('\n'))
      if (line.trim()) engine.learn(JSON.parse(line))
    say(`fake-claude resumed ${o.sessionId}: ${engine.history()} user messages`)
  } else if (o.explicitId && existsSync(file))
    die(1, `Error: Session ID ${o.sessionId} is already in use.`)

  let out: Promise<unknown> = Promise.resolve()
  let final: Json | null = null
  const writeLine = (p: Json) =>
    (out = out.then(() => Bun.write(Bun.stdout, `${JSON.stringify(p)}\n`)))
  engine.setIo({
    emit: async (payloads) => {
      for (const p of [payloads].flat()) {
        if (p.type === 'result') final = p
        if (outputFormat === 'stream-json') await writeLine(p)
      }
    },
    state: async () => {},
    delivery: async () => {},
    transcript: async (entry) => {
      mkdirSync(dirname(file), { recursive: true })
      appendFileSync(file, `${JSON.stringify(entry)}\n`)
    },
    flush: async () => void (await out),
  })

  if (inputFormat === 'stream-json') {
    const decoder = new TextDecoder()
    let buffer = ''
    const onLine = (line: string) => {
      if (!line.trim()) return
      let payload: unknown
      try {
        payload = JSON.parse(line)
      } catch {
        return die(1, `Error parsing streaming input line: ${line}`)
      }
      if (isObj(payload) && typeof payload.type === 'string') engine.handleInput(payload)
    }
    for await (const chunk of Bun.stdin.stream()) {
      buffer += decoder.decode(chunk, { stream: true })
      let i: number
      while ((i = buffer.indexOf('\n')) >= 0) {
        onLine(buffer.slice(0, i))
        buffer = buffer.slice(i + 1)
      }
    }
    onLine(buffer + decoder.decode())
  } else {
    const prompt = o.positional.join(' ') || (await Bun.stdin.text())
    if (!prompt.trim())
      die(
        1,
        'Error: Input must be provided either through stdin or as a prompt argument when using --print',
      )
    engine.enqueueTurn({ type: 'user', message: { role: 'user', content: prompt } })
  }
  // stdin EOF: finish what was queued, then exit 0.
  await engine.idle()
  await out
  const result = final as Json | null
  if (outputFormat === 'json' && result) await Bun.write(Bun.stdout, `${JSON.stringify(result)}\n`)
  if (outputFormat === 'text' && result) await Bun.write(Bun.stdout, `${result.result ?? ''}\n`)
  // Measured on 2.1.120 and 2.1.332: a turn stopped at --max-budget-usd makes the CLI exit 1.
  process.exit(engine.budgetExhausted() ? 1 : 0)
}
