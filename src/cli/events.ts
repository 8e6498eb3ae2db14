import { createClient } from '../client/client.ts'
import { brokerHelp, brokerOf, brokerOptions, UsageError, type Command } from './command.ts'
import { createRenderer } from './render.ts'

export const eventsCommand: Command = {
  name: 'events',
  summary: "Show a session's events, or follow them live",
  help: `Usage: cc-broker events [--follow] [--since N] [--json] [--url URL] [--api-key KEY] SESSION

Shows the session's events as a person reads them (--json: one JSON object per line). With
--follow it goes on with new ones as they come, resuming after a dropped connection, until
Ctrl-C.

  --follow, -f     keep following the session
  --since N        only events after sequence number N
  --json           print the raw events
${brokerHelp}`,
  options: {
    ...brokerOptions,
    follow: { type: 'boolean', short: 'f' },
    since: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run({ values, positionals }, io) {
    const sessionId = positionals[0]
    if (!sessionId || positionals.length > 1) throw new UsageError('give one session id')
    const since = values.since === undefined ? 0 : Number(values.since)
    if (!Number.isSafeInteger(since) || since < 0)
      throw new UsageError(`--since: expected a whole number from 0, got ${values.since}`)
    const client = createClient(brokerOf(values, io.env))
    const render = createRenderer({ out: (t) => io.out(t), err: (t) => io.err(t) })
    const show = (e: Parameters<typeof render.event>[0]) => {
      if (values.json) return io.out(`${JSON.stringify(e)}\n`)
      render.event(e)
      if (e.event_type === 'done' && e.source === 'broker')
        render.done(e.payload as Parameters<typeof render.done>[0], null)
    }
    if (!values.follow) {
      for (const e of await client.listEvents(sessionId, { since })) show(e)
      return 0
    }
    await client.getSession(sessionId)
    const ac = new AbortController()
    const stop = () => ac.abort()
    process.on('SIGINT', stop)
    try {
      for await (const e of client.followEvents(sessionId, { since, signal: ac.signal })) show(e)
    } catch (err) {
      if (!ac.signal.aborted) throw err
    } finally {
      process.off('SIGINT', stop)
    }
    return 0
  },
}
