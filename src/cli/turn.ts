import { createClient } from '../client/client.ts'
import { BrokerApiError } from '../client/errors.ts'
import type { BrokerEvent, Done, PermissionRequest } from '../client/events.ts'
import {
  brokerHelp,
  brokerOf,
  brokerOptions,
  UsageError,
  type CliIo,
  type Command,
} from './command.ts'
import { createRenderer } from './render.ts'
import { startSpinner } from './spinner.ts'

const EXIT = { done: 0, failed: 1, cancelled: 130 } as const

export const turnCommand: Command = {
  name: 'turn',
  summary: 'Send a message to a session and follow its turn',
  help: `Usage: cc-broker turn --session S [--workspace W] [--json] [--url URL] [--api-key KEY] "message"

Sends the message as a turn of session S (created when new) and shows it as it happens: the
assistant's text, one line per tool call with its outcome, permission requests (asked on a
terminal), and a last line with state, duration, cost and tokens.
Exit 0 when done, 1 when failed, 130 when cancelled; the first Ctrl-C cancels the turn.

  --session S      the session id
  --workspace W    its workspace (default: the session's own; "default" for a new one)
  --json           print the raw events, one JSON object per line
${brokerHelp}`,
  options: {
    ...brokerOptions,
    session: { type: 'string', short: 's' },
    workspace: { type: 'string', short: 'w' },
    json: { type: 'boolean' },
  },
  async run({ values, positionals }, io) {
    const sessionId = values.session as string | undefined
    const message = positionals.join(' ').trim()
    if (!sessionId) throw new UsageError('--session is required')
    if (!message) throw new UsageError('give the message to send')
    const client = createClient(brokerOf(values, io.env))
    const workspaceId =
      (values.workspace as string | undefined) ??
      (await client.getSession(sessionId).then(
        (s) => s.workspace_id,
        (err) => {
          if (err instanceof BrokerApiError && err.status === 404) return 'default'
          throw err
        },
      ))
    return followTurn(io, client, { sessionId, workspaceId, message }, values.json === true)
  },
}

async function followTurn(
  io: CliIo,
  client: ReturnType<typeof createClient>,
  input: { sessionId: string; workspaceId: string; message: string },
  json: boolean,
): Promise<number> {
  const started = Date.now()
  const render = createRenderer({ out: (t) => io.out(t), err: (t) => io.err(t) })
  const spinner = io.tty && !json ? startSpinner(io, started) : null
  let turnId: string | null = null
  let interrupts = 0
  const ac = new AbortController()
  // First Ctrl-C: cancel the turn and wait for its end; a second: leave at once.
  const onSigint = () => {
    interrupts++
    if (interrupts > 1 || !turnId) {
      ac.abort()
      return
    }
    io.err('\ncancelling the turn (Ctrl-C again to leave now)\n')
    void client.cancelTurn(turnId).catch((err) => io.err(`could not cancel: ${err.message}\n`))
  }
  process.on('SIGINT', onSigint)
  let done: Done | null = null
  try {
    // Partial messages: the text shows as it is written.
    const turn = { ...input, metadata: { partial_messages: true } }
    for await (const event of client.streamTurn(turn, { signal: ac.signal })) {
      turnId ??= event.turn_id
      spinner?.pause()
      if (json) io.out(`${JSON.stringify(event)}\n`)
      else render.event(event)
      if (event.event_type === 'permission_request' && !json)
        await askPermission(io, client, input.sessionId, event)
      if (event.event_type === 'done' && event.source === 'broker') done = event.payload as Done
      spinner?.resume(render.atLineStart())
    }
  } catch (err) {
    if (!ac.signal.aborted) throw err
  } finally {
    spinner?.stop()
    process.off('SIGINT', onSigint)
  }
  if (!done) {
    io.err('left before the turn ended\n')
    return EXIT.cancelled
  }
  if (!json) render.done(done, Date.now() - started)
  return EXIT[done.state]
}

async function askPermission(
  io: CliIo,
  client: ReturnType<typeof createClient>,
  sessionId: string,
  event: BrokerEvent,
) {
  const request = event.payload as PermissionRequest
  if (!io.tty) {
    io.err(`  waiting for an answer at POST ${request.answer_url}\n`)
    return
  }
  const answer = (await io.ask('  allow? [y/N] '))?.trim().toLowerCase()
  const behavior = answer === 'y' || answer === 'yes' ? 'allow' : 'deny'
  await client
    .answerPermission(sessionId, request.request_id, {
      behavior,
      ...(behavior === 'deny' ? { message: 'Denied at the terminal.' } : {}),
    })
    .catch((err) => io.err(`  could not answer: ${err.message}\n`))
}
