// The `mcp` scenario's client: connected before the ingress is contacted, as Claude Code does.
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { isObj, say, VERSION, type Options } from './options.ts'

export interface McpLink {
  client: Client | null
  server: string
  /** Why there is no client. */
  error: string
}

/** Connects to the first HTTP server of --mcp-config; a failure is remembered, not fatal. */
export async function connectMcp(o: Options, onFailed: (name: string) => void): Promise<McpLink> {
  const found = Object.entries(o.mcpServers).find(([, s]) => s?.type === 'http')
  if (!found) return { client: null, server: '', error: 'no server of type "http" in --mcp-config' }
  const [name, server] = found
  const own = isObj(server.headers) ? (server.headers as Record<string, string>) : {}
  const token = o.env.CLAUDE_CODE_SESSION_ACCESS_TOKEN
  // Claude Code sends its session token to HTTP MCP servers unless the entry sets its own.
  const auth: Record<string, string> =
    token && !Object.keys(own).some((k) => k.toLowerCase() === 'authorization')
      ? { authorization: `Bearer ${token}` }
      : {}
  const client = new Client({ name: 'claude-code', version: VERSION })
  try {
    const url = new URL(String(server.url))
    await client.connect(
      new StreamableHTTPClientTransport(url, { requestInit: { headers: { ...auth, ...own } } }),
    )
    return { client, server: name, error: '' }
  } catch (err) {
    const error = `cannot connect to MCP server ${name}: ${(err as Error).message}`
    say(`fake-claude: ${error}`)
    onFailed(name)
    return { client: null, server: name, error }
  }
}
