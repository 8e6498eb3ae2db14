import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'

export type McpHarness = Awaited<ReturnType<typeof startMcpHarness>>

/**
 * An McpServer with the given tools, served over Streamable HTTP (stateful, so a client's
 * notifications/cancelled reaches the handler) on 127.0.0.1, and an SDK Client connected to it.
 */
export async function startMcpHarness(register: (server: McpServer) => void) {
  const server = new McpServer({ name: 'test-worker', version: '0.0.0' })
  register(server)
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: () => crypto.randomUUID(),
  })
  await server.connect(transport)
  const http = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: (request) => transport.handleRequest(request),
  })
  const url = new URL(`http://127.0.0.1:${http.port}/mcp`)
  const client = new Client({ name: 'test-client', version: '0.0.0' })
  await client.connect(new StreamableHTTPClientTransport(url))

  const stop = async () => {
    await client.close().catch(() => {})
    await server.close().catch(() => {})
    await http.stop(true)
  }
  return {
    client,
    server,
    url,
    /** tools/call, with the result typed as a plain CallToolResult. */
    call: async (
      name: string,
      args: Record<string, unknown>,
      options?: Parameters<Client['callTool']>[2],
    ) => (await client.callTool({ name, arguments: args }, undefined, options)) as CallToolResult,
    /**
     * Per listed tool: its required and optional input fields (sorted), whether other fields
     * are refused, and whether every field has a description a model can act on.
     */
    shapes: async () => {
      const { tools } = await client.listTools()
      return Object.fromEntries(
        tools.map(({ name, inputSchema }) => {
          const props = (inputSchema.properties ?? {}) as Record<string, { description?: string }>
          const required = [...(inputSchema.required ?? [])].sort()
          return [
            name,
            {
              required,
              optional: Object.keys(props)
                .filter((key) => !required.includes(key))
                .sort(),
              strict: inputSchema.additionalProperties === false,
              described: Object.values(props).every((p) => (p.description ?? '').length > 10),
            },
          ]
        }),
      )
    },
    stop,
    [Symbol.asyncDispose]: stop,
  }
}

/** All text blocks of a result, joined with newlines. */
export function textOf(result: CallToolResult): string {
  return result.content
    .map((block) => (block.type === 'text' ? block.text : `[${block.type}]`))
    .join('\n')
}
