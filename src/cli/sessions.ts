import { createClient } from '../client/client.ts'
import { brokerHelp, brokerOf, brokerOptions, UsageError, type Command } from './command.ts'

export const sessionsCommand: Command = {
  name: 'sessions',
  summary: 'List sessions, newest first',
  help: `Usage: cc-broker sessions [--workspace W] [--limit N] [--json] [--url URL] [--api-key KEY]

  --workspace W    only this workspace's sessions
  --limit N        at most N (default 20)
  --json           one session JSON object per line
${brokerHelp}`,
  options: {
    ...brokerOptions,
    workspace: { type: 'string', short: 'w' },
    limit: { type: 'string', short: 'n' },
    json: { type: 'boolean' },
  },
  async run({ values }, io) {
    const limit = Number(values.limit ?? 20)
    if (!Number.isInteger(limit) || limit < 1 || limit > 500)
      throw new UsageError(`--limit: expected a whole number from 1 to 500, got ${values.limit}`)
    const client = createClient(brokerOf(values, io.env))
    const page = await client.listSessions({
      workspaceId: values.workspace as string | undefined,
      limit,
    })
    if (values.json) {
      for (const s of page.data) io.out(`${JSON.stringify(s)}\n`)
      return 0
    }
    if (page.data.length === 0) {
      io.out('no sessions\n')
      return 0
    }
    const rows = page.data.map((s) => [s.id, s.workspace_id, s.status, s.created_at, s.title])
    const head = ['ID', 'WORKSPACE', 'STATUS', 'CREATED', 'TITLE']
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
    for (const r of [head, ...rows])
      io.out(`${r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join('  ')}\n`)
    return 0
  },
}
