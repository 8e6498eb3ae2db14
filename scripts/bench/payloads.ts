// Worker events shaped like Claude Code's `assistant` messages (~1 KB of JSON each), with uuids
// that carry their index: a random 24-character run prefix, then the index as 12 hex digits.
// A listener recovers the index from the uuid alone, with no lookup table.

const WORDS = (
  'the broker keeps a durable log of every session event so that a listener can replay what ' +
  'it missed and a worker can resume after a crash while the fan out stays in order and no ' +
  'event is sent twice even when several replicas append to one database at the same time'
).split(' ')

const TARGET_BYTES = 1000

/** A fresh prefix per run, so a run's uuids never collide with an earlier run's. */
export const uuidPrefix = () => crypto.randomUUID().slice(0, 24)

export const indexedUuid = (prefix: string, index: number) =>
  prefix + index.toString(16).padStart(12, '0')

/** The index an `indexedUuid` carries, or -1 when the uuid has another prefix. */
export const uuidIndex = (prefix: string, uuid: string) =>
  uuid.startsWith(prefix) ? parseInt(uuid.slice(24), 16) : -1

let seed = 42
const rand = (n: number) => {
  seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff
  return seed % n
}
const words = (n: number) => Array.from({ length: n }, () => WORDS[rand(WORDS.length)]).join(' ')
const base62 = (n: number) =>
  Array.from(
    { length: n },
    () => 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'[rand(62)],
  ).join('')

/** One `assistant` event; every third one carries a tool_use block as well as text. */
export function assistantPayload(uuid: string, claudeSessionId: string, index: number) {
  const content: Record<string, unknown>[] = [{ type: 'text', text: '' }]
  if (index % 3 === 2)
    content.push({
      type: 'tool_use',
      id: `toolu_01${base62(22)}`,
      name: 'Bash',
      input: { command: `grep -rn "${words(2)}" src/`, description: words(5) },
    })
  const payload = {
    type: 'assistant',
    message: {
      id: `msg_01${base62(22)}`,
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-5-20250929',
      content,
      stop_reason: null,
      stop_sequence: null,
      usage: {
        input_tokens: 4 + rand(50),
        cache_creation_input_tokens: rand(4000),
        cache_read_input_tokens: 10_000 + rand(40_000),
        output_tokens: 1 + rand(900),
        service_tier: 'standard',
      },
    },
    parent_tool_use_id: null,
    session_id: claudeSessionId,
    uuid,
  }
  const short = TARGET_BYTES - JSON.stringify(payload).length
  content[0]!.text = words(Math.max(1, Math.round(short / 6))).slice(0, Math.max(1, short))
  return payload
}

/** `count` payloads with indexes `first`.. under `prefix`. */
export const payloads = (prefix: string, first: number, count: number, claudeSessionId: string) =>
  Array.from({ length: count }, (_, i) =>
    assistantPayload(indexedUuid(prefix, first + i), claudeSessionId, first + i),
  )

/** A POST /worker/events body. */
export const eventsBody = (epoch: number, batch: Record<string, unknown>[]) =>
  JSON.stringify({ worker_epoch: epoch, events: batch.map((payload) => ({ payload })) })
