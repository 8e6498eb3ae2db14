// The conversation and its turns, the same on both transports: user messages run one after
// another, control requests are answered, and what happens inside a turn is the scenario's.
import type { Io } from './io.ts'
import type { McpLink } from './mcp-client.ts'
import { assistant, streamEvents, textOf } from './messages.ts'
import { die, isObj, now, say, uuid, VERSION, type Json, type Options } from './options.ts'
import { replyOf, TurnFailure, type TurnCtx } from './scenarios.ts'

export type Engine = ReturnType<typeof createEngine>

export function createEngine(o: Options, mcp: () => Promise<McpLink>) {
  let io: Io | null = null
  const out = () => io ?? die(1, 'fake-claude: no transport')
  const stamp = (p: Json): Json => ({ ...p, session_id: o.sessionId, uuid: p.uuid ?? uuid() })

  // What this conversation knows: prompt uuids (for dedup) and how many prompts came before.
  const knownUuids = new Set<string>()
  let history = 0
  let lastUuid: string | null = null
  const isPrompt = (e: Json) =>
    e.type === 'user' &&
    !e.isMeta &&
    !(
      Array.isArray(e.message?.content) &&
      e.message.content.some((b: Json) => b?.type === 'tool_result')
    )
  // Spend: this process's, and (FAKE_CLAUDE_COST_STATE=cumulative, as 2.1.332 does) what the
  // conversation cost before it, restored from the transcript's last `cost-state` entry.
  const cumulative = o.env.FAKE_CLAUDE_COST_STATE === 'cumulative'
  let priorCost: { totalCostUSD: number; modelUsage: Json } = { totalCostUSD: 0, modelUsage: {} }
  let processCost = 0
  let processModels: Json = {}
  const learn = (entry: Json) => {
    if (entry.type === 'cost-state' && cumulative) {
      priorCost = {
        totalCostUSD: Number(entry.totalCostUSD ?? 0),
        modelUsage: entry.modelUsage ?? {},
      }
      return
    }
    if (typeof entry.uuid === 'string') knownUuids.add(entry.uuid)
    if (isPrompt(entry)) history++
    lastUuid = entry.uuid ?? lastUuid
  }

  let current: AbortController | null = null
  /** A turn stopped at --max-budget-usd: the CLI then exits 1 once its input ends. */
  let budgetExhausted = false
  let queued = 0
  let turnChain: Promise<void> = Promise.resolve()
  const pendingAnswers = new Map<string, (response: Json) => void>()

  const enqueueTurn = (user: Json) => {
    queued++
    turnChain = turnChain
      .then(() => runTurn(user))
      .catch((err) => die(1, `fake-claude: turn failed: ${err?.stack ?? err}`))
  }

  async function runTurn(user: Json) {
    queued--
    const io = out()
    const promptUuid = typeof user.uuid === 'string' ? user.uuid : uuid()
    if (knownUuids.has(promptUuid)) {
      // Real Claude Code: "Skipping duplicate user message", reported processed.
      say(`Skipping duplicate user message: ${promptUuid}`)
      return io.delivery(promptUuid, 'processed')
    }
    const started = Date.now()
    const earlier = history
    const ac = new AbortController()
    current = ac
    await io.state({ worker_status: 'running', requires_action_details: null })
    await io.delivery(promptUuid, 'processing')
    await io.state({ external_metadata: { post_turn_summary: null } })
    const userEntry = {
      type: 'user',
      uuid: promptUuid,
      parentUuid: lastUuid,
      sessionId: o.sessionId,
      cwd: process.cwd(),
      version: VERSION,
      timestamp: now(),
      message: { role: 'user', content: user.message?.content },
    }
    learn(userEntry)
    await io.transcript(userEntry)
    await io.emit(
      stamp({
        type: 'system',
        subtype: 'init',
        cwd: process.cwd(),
        tools: o.tools,
        mcp_servers: Object.keys(o.mcpServers).map((name) => ({ name, status: mcpStatus(name) })),
        model: o.model,
        permissionMode: o.permissionMode,
        slash_commands: [],
        apiKeySource: o.env.ANTHROPIC_API_KEY ? 'ANTHROPIC_API_KEY' : 'none',
        claude_code_version: VERSION,
        output_style: 'default',
        agents: [],
        skills: [],
        plugins: [],
      }),
    )
    if (o.has('--replay-user-messages'))
      await io.emit(stamp({ ...user, uuid: promptUuid, isReplay: true }))
    const suffix = o.resumed || earlier > 0 ? ` (history: ${earlier})` : ''
    const text = textOf(user.message?.content)
    const ctx: TurnCtx = {
      o,
      io,
      mcp,
      stamp,
      signal: ac.signal,
      numTurns: 1,
      text,
      history: earlier,
      echo: `echo: ${text}${suffix}`,
      askAnswer: (requestId) =>
        new Promise<Json>((resolve) => pendingAnswers.set(requestId, resolve)),
      forgetAnswer: (requestId) => void pendingAnswers.delete(requestId),
    }
    const usage = { input_tokens: 10, output_tokens: 5 }
    // What this turn costs: the control answer's `cost_usd`, FAKE_CLAUDE_COST_USD, or 0.0123.
    let turnCost = Number(o.env.FAKE_CLAUDE_COST_USD ?? 0.0123)
    ctx.setCost = (usd) => void (turnCost = usd)
    const modelEntry = (u: { inputTokens: number; outputTokens: number; costUSD: number }) => ({
      ...u,
      cacheReadInputTokens: 0,
      cacheCreationInputTokens: 0,
      webSearchRequests: 0,
      contextWindow: 200000,
      maxOutputTokens: 32000,
    })
    const add = (into: Json, u: { inputTokens: number; outputTokens: number; costUSD: number }) => {
      const was = into[o.model] ?? { inputTokens: 0, outputTokens: 0, costUSD: 0 }
      return {
        ...into,
        [o.model]: modelEntry({
          inputTokens: was.inputTokens + u.inputTokens,
          outputTokens: was.outputTokens + u.outputTokens,
          costUSD: was.costUSD + u.costUSD,
        }),
      }
    }
    let counted = false
    // Claude Code's totals: modelUsage per model; with cumulative cost state, the conversation's
    // so far plus `model_usage_since_last_result` for this result alone.
    const spend = () => {
      if (!counted) {
        counted = true
        const u = {
          inputTokens: usage.input_tokens,
          outputTokens: usage.output_tokens,
          costUSD: turnCost,
        }
        processCost += turnCost
        processModels = add(processModels, u)
      }
      const thisTurn = add(
        {},
        {
          inputTokens: usage.input_tokens,
          outputTokens: usage.output_tokens,
          costUSD: turnCost,
        },
      )
      if (!cumulative) return { total_cost_usd: processCost, modelUsage: processModels }
      let models: Json = priorCost.modelUsage
      for (const m of Object.values(processModels) as Json[])
        models = add(models, {
          inputTokens: m.inputTokens,
          outputTokens: m.outputTokens,
          costUSD: m.costUSD,
        })
      return {
        total_cost_usd: priorCost.totalCostUSD + processCost,
        modelUsage: models,
        model_usage_since_last_result: thisTurn,
      }
    }
    const common = () => ({
      num_turns: ctx.numTurns,
      duration_ms: Date.now() - started,
      duration_api_ms: 1,
      ...spend(),
      usage,
      permission_denials: [],
    })
    const saveCost = async () => {
      if (!cumulative) return
      const c = spend()
      await io.transcript({
        type: 'cost-state',
        sessionId: o.sessionId,
        totalCostUSD: c.total_cost_usd,
        modelUsage: c.modelUsage,
      })
    }
    try {
      const reply = await replyOf(o.scenario, ctx)
      const message = assistant(o.model, [{ type: 'text', text: reply }])
      if (o.has('--include-partial-messages'))
        await io.emit(
          streamEvents(o.model, message.message.id, reply, o.transport === 'ccr').map((event) =>
            stamp({ type: 'stream_event', event, parent_tool_use_id: null }),
          ),
          true,
        )
      const posted = stamp(message)
      await io.emit(posted)
      const entry = {
        type: 'assistant',
        uuid: posted.uuid,
        parentUuid: lastUuid,
        sessionId: o.sessionId,
        timestamp: now(),
        message: { ...message.message, stop_reason: 'end_turn' },
      }
      learn(entry)
      await io.transcript(entry)
      await io.delivery(promptUuid, 'processed')
      spend()
      await saveCost()
      // As Claude Code checks --max-budget-usd: after the model call, against this process's spend.
      if (o.maxBudgetUsd !== undefined && processCost >= o.maxBudgetUsd) {
        budgetExhausted = true
        await io.emit(
          stamp({
            type: 'result',
            subtype: 'error_max_budget_usd',
            is_error: true,
            ...common(),
            stop_reason: 'end_turn',
            terminal_reason: 'budget_exhausted',
            errors: [`Reached maximum budget ($${o.maxBudgetUsd})`],
          }),
        )
        current = null
        if (queued === 0) await io.state({ worker_status: 'idle', requires_action_details: null })
        return
      }
      await io.emit(
        stamp({
          type: 'result',
          subtype: 'success',
          is_error: false,
          result: reply,
          ...common(),
          stop_reason: 'end_turn',
          terminal_reason: 'completed',
        }),
      )
    } catch (err) {
      if (err instanceof TurnFailure && !ac.signal.aborted) {
        // As Claude Code ends a turn whose model calls failed: an error result, process alive.
        await io.delivery(promptUuid, 'processed')
        await io.emit(
          stamp({
            type: 'result',
            subtype: 'error_during_execution',
            is_error: true,
            ...common(),
            stop_reason: null,
            terminal_reason: 'model_error',
            errors: [err.message],
          }),
        )
        current = null
        if (queued === 0) await io.state({ worker_status: 'idle', requires_action_details: null })
        return
      }
      if (!ac.signal.aborted) throw err
      await io.emit(
        stamp({
          type: 'user',
          parent_tool_use_id: null,
          timestamp: now(),
          message: {
            role: 'user',
            content: [{ type: 'text', text: '[Request interrupted by user]' }],
          },
        }),
      )
      await io.delivery(promptUuid, 'processed')
      await io.emit(
        stamp({
          type: 'result',
          subtype: 'error_during_execution',
          is_error: true,
          ...common(),
          stop_reason: null,
          terminal_reason: 'aborted_streaming',
          errors: ['Request was aborted.'],
        }),
      )
    }
    current = null
    // A message queued during the turn runs next with no idle in between.
    if (queued === 0) await io.state({ worker_status: 'idle', requires_action_details: null })
  }

  const failedMcp = new Set<string>()
  const mcpStatus = (name: string) => (failedMcp.has(name) ? 'failed' : 'connected')

  async function control(payload: Json) {
    const io = out()
    const requestId = payload.request_id
    const req: Json = isObj(payload.request) ? payload.request : {}
    // A control_request with a uuid is reported processed as soon as it is read.
    if (typeof payload.uuid === 'string') void io.delivery(payload.uuid, 'processed')
    const reply = (response?: Json) =>
      io.emit(
        stamp({
          type: 'control_response',
          response: {
            subtype: 'success',
            request_id: requestId,
            ...(response ? { response } : {}),
          },
        }),
      )
    // `stubborn` models a wedged CLI: it answers neither interrupt nor end_session.
    if (o.scenario === 'stubborn' && ['interrupt', 'end_session'].includes(req.subtype)) return
    switch (req.subtype) {
      case 'end_session':
        await reply()
        await io.flush()
        return die(0)
      case 'interrupt':
        void reply()
        return current?.abort()
      case 'initialize':
        return reply({
          commands: [],
          agents: [],
          models: [],
          output_style: 'default',
          pid: process.pid,
        })
      case 'set_model':
        o.model = String(req.model ?? o.model)
        // As the test wrapper does with --model fake:<scenario>[:<delay>] at start.
        if (o.model.startsWith('fake:')) {
          const [name, delay] = o.model.slice(5).split(':')
          o.scenario = name as typeof o.scenario
          if (delay !== undefined) o.env.FAKE_CLAUDE_DELAY_MS = delay
        }
        void io.state({ external_metadata: { model: o.model } })
        return reply()
      case 'set_permission_mode':
        o.permissionMode = String(req.mode)
        void io.state({
          external_metadata: { permission_mode: o.permissionMode, is_ultraplan_mode: null },
        })
        return reply({ mode: o.permissionMode })
      case 'mcp_status':
        return reply({
          mcpServers: Object.keys(o.mcpServers).map((name) => ({ name, status: mcpStatus(name) })),
        })
      default:
        return io.emit(
          stamp({
            type: 'control_response',
            response: {
              subtype: 'error',
              request_id: requestId,
              error: `Unsupported control request subtype: ${req.subtype}`,
            },
          }),
        )
    }
  }

  return {
    setIo(value: Io) {
      io = value
    },
    learn,
    history: () => history,
    delivery: (eventId: string, status: 'received' | 'processing' | 'processed') =>
      out().delivery(eventId, status),
    /** An MCP server that could not be connected shows as failed in init and mcp_status. */
    markMcpFailed: (name: string) => void failedMcp.add(name),
    /** One client event, from the stream (CCR v2) or stdin (stdio). */
    handleInput(payload: Json) {
      switch (payload.type) {
        case 'user':
          return enqueueTurn(payload)
        case 'control_request':
          return void control(payload)
        case 'control_response': {
          const response = isObj(payload.response) ? payload.response : {}
          const resolve = pendingAnswers.get(String(response.request_id))
          if (resolve) return resolve(response)
          return say(`fake-claude: control_response for unknown request ${response.request_id}`)
        }
        case 'update_environment_variables':
          if (isObj(payload.variables)) Object.assign(o.env, payload.variables)
          return
        default:
          return // keep_alive, assistant, system: nothing to run
      }
    },
    enqueueTurn,
    budgetExhausted: () => budgetExhausted,
    /** Resolves once every turn queued so far (and any they queued) has run. */
    async idle() {
      for (let seen: Promise<void> | null = null; seen !== turnChain;) {
        seen = turnChain
        await seen
      }
    },
  }
}
