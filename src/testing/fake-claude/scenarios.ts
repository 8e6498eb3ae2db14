// What happens inside a turn, by scenario: the reply text it ends with, and anything it does on
// the way (a permission request, an MCP tool call, a stuck process).
import type { Io } from './io.ts'
import type { McpLink } from './mcp-client.ts'
import { assistant, streamEvents, textOf, toolResult, toolUseId } from './messages.ts'
import { die, isObj, say, uuid, type Json, type Options, type Scenario } from './options.ts'

/** One turn as a scenario sees it. */
export interface TurnCtx {
  o: Options
  io: Io
  /** The link to the broker's MCP server, connected at the first call. */
  mcp(): Promise<McpLink>
  stamp(p: Json): Json
  /** Aborts when the turn is interrupted. */
  signal: AbortSignal
  /** Model round trips so far (the result's num_turns). */
  numTurns: number
  /** The user message's text, and how many prompts came before it. */
  text: string
  history: number
  /** The default reply: `echo: <text>`, with the history count on a resumed conversation. */
  echo: string
  /** Waits for the control_response to one of this turn's can_use_tool requests. */
  askAnswer(requestId: string): Promise<Json>
  forgetAnswer(requestId: string): void
  /** Sets what this turn costs (a control answer's `cost_usd`). */
  setCost?(usd: number): void
}

const never = new Promise<never>(() => {})

/** Resolves with `p`, or rejects when `signal` aborts; keeps the event loop alive meanwhile. */
export function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const keep = setInterval(() => {}, 1 << 30)
    const done = () => (clearInterval(keep), signal.removeEventListener('abort', onAbort))
    const onAbort = () => (done(), reject(new Error('Request was aborted.')))
    if (signal.aborted) return onAbort()
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(
      (v) => (done(), resolve(v)),
      (e) => (done(), reject(e)),
    )
  })
}

const SCENARIO_REPLY: Record<Exclude<Scenario, 'no-start'>, (ctx: TurnCtx) => Promise<string>> = {
  echo: async (ctx) => ctx.echo,
  slow: async (ctx) => {
    await abortable(Bun.sleep(Number(ctx.o.env.FAKE_CLAUDE_DELAY_MS ?? 2000)), ctx.signal)
    return ctx.echo
  },
  hang: (ctx) => abortable(never, ctx.signal),
  stubborn: () => abortable(never, new AbortController().signal),
  crash: async () => die(3, 'fake crash'),
  grandchild: (ctx) => {
    const child = Bun.spawn(['sleep', '300'], { stdio: ['ignore', 'ignore', 'ignore'] })
    child.unref()
    say(`fake-claude grandchild pid=${child.pid}`)
    ctx.o.record({ grandchild_pid: child.pid })
    return abortable(never, ctx.signal)
  },
  tool: useTool,
  mcp: callMcp,
  control: askControl,
}

export const replyOf = (scenario: Scenario, ctx: TurnCtx): Promise<string> =>
  scenario === 'no-start' ? die(2, 'fake: cannot start') : SCENARIO_REPLY[scenario](ctx)

/**
 * `control` scenario: the test process decides the turn. The fake POSTs the turn to
 * FAKE_CLAUDE_CONTROL_URL/turn and waits for the answer, `{reply?: string}`, as long as the test
 * takes (a test holds a turn mid-way this way); an interrupt aborts the wait.
 */
async function askControl(ctx: TurnCtx): Promise<string> {
  const answer = await ask(ctx, 'turn')
  if (typeof answer.burst === 'number' && answer.burst > 0)
    await ctx.io.emit(
      Array.from({ length: answer.burst }, (_, i) =>
        ctx.stamp(assistant(ctx.o.model, [{ type: 'text', text: `burst ${i}` }])),
      ),
    )
  for (const step of Array.isArray(answer.steps) ? (answer.steps as Json[]) : [])
    await runStep(ctx, step)
  if (typeof answer.cost_usd === 'number') ctx.setCost?.(answer.cost_usd)
  if (typeof answer.exit === 'number') die(answer.exit, `fake-claude: exits ${answer.exit} as told`)
  if (typeof answer.fail === 'string') throw new TurnFailure(answer.fail)
  return typeof answer.reply === 'string' ? answer.reply : ctx.echo
}

/** POSTs this turn to the control server's `path` and waits for its answer. */
async function ask(ctx: TurnCtx, path: 'turn' | 'hold'): Promise<Json> {
  const url = `${ctx.o.env.FAKE_CLAUDE_CONTROL_URL}/${path}`
  const body = {
    session_id: ctx.o.env.CCBROKER_SESSION_ID ?? null,
    turn_id: ctx.o.env.CCBROKER_TURN_ID ?? null,
    claude_session_id: ctx.o.sessionId,
    pid: process.pid,
    text: ctx.text,
    history: ctx.history,
  }
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: ctx.signal,
  }).catch((err) => {
    if (ctx.signal.aborted) throw err
    return die(1, `fake-claude: control server at ${url} failed: ${(err as Error).message}`)
  })
  if (!res.ok) die(1, `fake-claude: control server answered ${res.status}: ${await res.text()}`)
  return (await abortable(res.json(), ctx.signal)) as Json
}

/** A hold step: waits for the test to release it, then runs the steps the release gives. */
async function holdHere(ctx: TurnCtx): Promise<void> {
  const answer = await ask(ctx, 'hold')
  for (const step of Array.isArray(answer.steps) ? (answer.steps as Json[]) : [])
    await runStep(ctx, step)
}

/** The turn ends with an error result carrying `message` (the model API failed, say). */
export class TurnFailure extends Error {}

/** One step of a scripted turn (see ControlAnswer in worker-control.ts). */
async function runStep(ctx: TurnCtx, step: Json): Promise<void> {
  const { o, io } = ctx
  const input = (v: unknown): Json => (isObj(v) ? v : {})
  if (typeof step.text === 'string')
    return io.emit(ctx.stamp(assistant(o.model, [{ type: 'text', text: step.text }])))
  if (typeof step.stream === 'string') {
    const message = assistant(o.model, [{ type: 'text', text: step.stream }])
    const frames = streamEvents(o.model, message.message.id, step.stream, o.transport === 'ccr')
    const partial = (events: Json[]) =>
      io.emit(
        events.map((event) => ctx.stamp({ type: 'stream_event', event, parent_tool_use_id: null })),
        true,
      )
    const streaming = o.has('--include-partial-messages')
    // With `hold`, the message stops after its last delta, as if the model paused mid-write.
    const cut = step.hold === true ? frames.findIndex((f) => f.type === 'content_block_stop') : 0
    if (streaming && cut > 0) await partial(frames.slice(0, cut))
    if (step.hold === true) await holdHere(ctx)
    if (streaming) await partial(frames.slice(cut))
    return io.emit(ctx.stamp(message))
  }
  if (step.hold === true) return holdHere(ctx)
  if (typeof step.tool === 'string') {
    const useId = toolUseId()
    ctx.numTurns++
    await io.emit(
      ctx.stamp(
        assistant(o.model, [
          { type: 'tool_use', id: useId, name: step.tool, input: input(step.input) },
        ]),
      ),
    )
    const output = [{ type: 'text', text: String(step.output ?? `fake ${step.tool} output`) }]
    return io.emit(ctx.stamp(toolResult(useId, output, step.isError === true)))
  }
  if (typeof step.mcp === 'string')
    return void (await callBrokerTool(ctx, step.mcp, input(step.args)))
  if (typeof step.permission === 'string')
    return void (await usePermittedTool(ctx, step.permission, input(step.input)))
  die(1, `fake-claude: unknown step ${JSON.stringify(step)}`)
}

/** `tool` scenario: one can_use_tool round trip, then says what the answer was. */
function useTool(ctx: TurnCtx): Promise<string> {
  return usePermittedTool(
    ctx,
    ctx.o.env.FAKE_CLAUDE_TOOL || 'mcp__broker__remote_bash',
    JSON.parse(ctx.o.env.FAKE_CLAUDE_TOOL_INPUT || '{"command":"ls"}'),
  )
}

/**
 * A tool call that needs permission: asked over the transport unless the mode or the allowed
 * tools grant it (denied when print mode has no one to ask), then its result per the answer.
 */
export async function usePermittedTool(
  ctx: TurnCtx,
  toolName: string,
  input: Json,
): Promise<string> {
  const { o, io } = ctx
  const useId = toolUseId()
  const requestId = uuid()
  ctx.numTurns++
  const preAllowed =
    o.permissionMode === 'bypassPermissions' ||
    o.allowedTools.some(
      (t) => t === toolName || (t.startsWith('mcp__') && toolName.startsWith(`${t}__`)),
    )
  // In stdio mode prompts go over stdout only with --permission-prompt-tool stdio; without it
  // print mode has no one to ask and denies.
  const canAsk = o.transport === 'ccr' || o.flag('--permission-prompt-tool') === 'stdio'
  const ask = !preAllowed && canAsk
  const details = {
    tool_name: toolName,
    display_tool_name: toolName,
    action_description: '',
    request_id: requestId,
    tool_use_id: useId,
  }
  if (ask) await io.state({ worker_status: 'requires_action', requires_action_details: details })
  await io.emit(
    ctx.stamp(assistant(o.model, [{ type: 'tool_use', id: useId, name: toolName, input }])),
  )
  let answer: Json = preAllowed
    ? { behavior: 'allow', updatedInput: input }
    : {
        behavior: 'deny',
        message: `Claude requested permissions to use ${toolName}, but you haven't granted it yet.`,
      }
  if (ask) {
    const answered = ctx.askAnswer(requestId)
    await io.emit(
      ctx.stamp({
        type: 'control_request',
        request_id: requestId,
        request: {
          subtype: 'can_use_tool',
          tool_name: toolName,
          display_name: toolName,
          input,
          permission_suggestions: [
            {
              type: 'addRules',
              rules: [{ toolName }],
              behavior: 'allow',
              destination: 'localSettings',
            },
          ],
          tool_use_id: useId,
        },
      }),
    )
    await io.state({ external_metadata: { pending_action: { ...details, input } } })
    try {
      const response = await abortable(answered, ctx.signal)
      answer =
        response.subtype === 'error'
          ? { behavior: 'deny', message: String(response.error ?? 'error') }
          : isObj(response.response)
            ? response.response
            : { behavior: 'deny', message: 'no answer' }
    } catch (err) {
      // Interrupted while asking: Claude Code withdraws its pending request.
      if (ctx.signal.aborted)
        await io.emit(ctx.stamp({ type: 'control_cancel_request', request_id: requestId }))
      throw err
    } finally {
      ctx.forgetAnswer(requestId)
      await io.state({ worker_status: 'running', requires_action_details: null })
      await io.state({ external_metadata: { pending_action: null, post_turn_summary: null } })
    }
  }
  const allowed = answer.behavior === 'allow'
  const message = String(answer.message ?? '')
  await io.emit(
    ctx.stamp(
      allowed
        ? toolResult(useId, [{ type: 'text', text: `fake ${toolName} output` }], false)
        : toolResult(useId, message, true),
    ),
  )
  return allowed ? 'tool allowed' : `tool denied: ${message}`
}

/** `mcp` scenario: lists the broker's tools, or calls FAKE_CLAUDE_MCP_TOOL with its args. */
async function callMcp(ctx: TurnCtx): Promise<string> {
  const mcp = await ctx.mcp()
  if (!mcp.client) return `mcp error: ${mcp.error}`
  const wanted = ctx.o.env.FAKE_CLAUDE_MCP_TOOL
  if (!wanted) {
    const { tools: listed } = await mcp.client.listTools(undefined, { signal: ctx.signal })
    return `mcp tools: ${listed.map((t) => t.name).join(', ')}`
  }
  return callBrokerTool(ctx, wanted, JSON.parse(ctx.o.env.FAKE_CLAUDE_MCP_ARGS || '{}'))
}

/** Calls one of the broker's MCP tools (named with or without its `mcp__<server>__` prefix). */
export async function callBrokerTool(ctx: TurnCtx, wanted: string, args: Json): Promise<string> {
  const { o, io } = ctx
  const mcp = await ctx.mcp()
  if (!mcp.client) return `mcp error: ${mcp.error}`
  const prefix = `mcp__${mcp.server}__`
  const name = wanted.startsWith(prefix) ? wanted.slice(prefix.length) : wanted
  const useId = toolUseId()
  ctx.numTurns++
  await io.emit(
    ctx.stamp(
      assistant(o.model, [{ type: 'tool_use', id: useId, name: prefix + name, input: args }]),
    ),
  )
  let result: Json
  try {
    result = await mcp.client.callTool(
      { name, arguments: args, _meta: { 'claudecode/toolUseId': useId } },
      undefined,
      { signal: ctx.signal },
    )
  } catch (err) {
    if (ctx.signal.aborted) throw err
    const text = `mcp error: ${(err as Error).message}`
    await io.emit(ctx.stamp(toolResult(useId, text, true)))
    return text
  }
  const content = Array.isArray(result.content) ? result.content : []
  const text = textOf(content)
  await io.emit(ctx.stamp(toolResult(useId, content, result.isError === true)))
  return result.isError ? `mcp tool error: ${text}` : text
}
