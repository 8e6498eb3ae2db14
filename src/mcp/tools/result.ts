import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js'
import type {
  CallToolResult,
  ServerNotification,
  ServerRequest,
} from '@modelcontextprotocol/sdk/types.js'
import { BrokerError } from '../../errors.ts'
import type { Logger } from '../../log.ts'

/** What a tool handler gets besides its arguments (signal, progress token, notifications). */
export type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>

/**
 * Sends `notifications/progress` for the request when the client asked for them (it sent a
 * progressToken); clients that reset their timeout on progress then keep waiting.
 */
export function progressReporter(
  extra: ToolExtra,
  label: string,
): ((elapsedMs: number) => void) | undefined {
  const progressToken = extra._meta?.progressToken
  if (progressToken === undefined) return undefined
  let progress = 0
  return (elapsedMs) => {
    progress += 1
    const message = `${label}: still running after ${Math.round(elapsedMs / 1000)} s`
    extra
      .sendNotification({
        method: 'notifications/progress',
        params: { progressToken, progress, message },
      })
      .catch(() => {})
  }
}

export function textResult(text: string): CallToolResult {
  return { content: [{ type: 'text', text }] }
}

export function errorResult(text: string): CallToolResult {
  return { content: [{ type: 'text', text }], isError: true }
}

/** A handler never throws: the model gets what went wrong and what to do instead. */
export function failure(err: unknown, tool: string, log?: Logger): CallToolResult {
  if (err instanceof BrokerError) return errorResult(err.message)
  log?.error('mcp tool failed', { tool, err })
  const message = err instanceof Error ? err.message : String(err)
  return errorResult(`${tool} failed unexpectedly: ${message}; retry once, then tell the user`)
}
