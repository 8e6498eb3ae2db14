import type { ModelUsage } from '../db/schema.ts'

/** What one worker `result` cost, by itself (not what the conversation cost before it). */
export interface ResultUsage {
  costUsd: number
  inputTokens: number
  outputTokens: number
  cacheReadInputTokens: number
  cacheCreationInputTokens: number
  byModel: Record<string, ModelUsage>
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0)

/**
 * The spend of one `result`. Claude Code 2.1.332 keeps `total_cost_usd` and `modelUsage`
 * cumulative over the whole conversation, restored on `--resume` (and carried into a
 * `--fork-session`), and adds `model_usage_since_last_result` for this result alone; 2.1.120
 * has no such field and its totals count this process only, which for a broker turn (one
 * process, one message) is the turn. So: the per-result field when present, else the totals.
 */
export function resultUsage(
  p: Record<string, unknown>,
  /**
   * The same process's previous result: a warm worker serves several turns, and where the
   * totals count the process, this result's share is the difference.
   */
  previous?: Record<string, unknown> | null,
): ResultUsage {
  const own = ownUsage(p)
  if (!previous || isObj(p.model_usage_since_last_result)) return own
  const before = ownUsage(previous)
  const minus = (a: number, b: number) => Math.max(0, a - b)
  const byModel: Record<string, ModelUsage> = {}
  for (const [model, m] of Object.entries(own.byModel)) {
    const b = before.byModel[model]
    byModel[model] = b
      ? {
          input_tokens: minus(m.input_tokens, b.input_tokens),
          output_tokens: minus(m.output_tokens, b.output_tokens),
          cache_read_input_tokens: minus(m.cache_read_input_tokens, b.cache_read_input_tokens),
          cache_creation_input_tokens: minus(
            m.cache_creation_input_tokens,
            b.cache_creation_input_tokens,
          ),
          cost_usd: minus(m.cost_usd, b.cost_usd),
        }
      : m
  }
  return {
    costUsd: minus(own.costUsd, before.costUsd),
    inputTokens: minus(own.inputTokens, before.inputTokens),
    outputTokens: minus(own.outputTokens, before.outputTokens),
    cacheReadInputTokens: minus(own.cacheReadInputTokens, before.cacheReadInputTokens),
    cacheCreationInputTokens: minus(own.cacheCreationInputTokens, before.cacheCreationInputTokens),
    byModel,
  }
}

function ownUsage(p: Record<string, unknown>): ResultUsage {
  const since = isObj(p.model_usage_since_last_result) ? p.model_usage_since_last_result : null
  const models = since ?? (isObj(p.modelUsage) ? p.modelUsage : {})
  const byModel: Record<string, ModelUsage> = {}
  for (const [model, raw] of Object.entries(models)) {
    if (!isObj(raw)) continue
    byModel[model] = {
      input_tokens: num(raw.inputTokens),
      output_tokens: num(raw.outputTokens),
      cache_read_input_tokens: num(raw.cacheReadInputTokens),
      cache_creation_input_tokens: num(raw.cacheCreationInputTokens),
      cost_usd: num(raw.costUSD),
    }
  }
  const all = Object.values(byModel)
  const sum = (k: keyof ModelUsage) => all.reduce((n, m) => n + m[k], 0)
  const usage = isObj(p.usage) ? p.usage : {}
  const tokens = (modelKey: keyof ModelUsage, usageKey: string) =>
    all.length > 0 ? sum(modelKey) : num(usage[usageKey])
  return {
    costUsd:
      since || typeof p.total_cost_usd !== 'number' ? sum('cost_usd') : num(p.total_cost_usd),
    inputTokens: tokens('input_tokens', 'input_tokens'),
    outputTokens: tokens('output_tokens', 'output_tokens'),
    cacheReadInputTokens: tokens('cache_read_input_tokens', 'cache_read_input_tokens'),
    cacheCreationInputTokens: tokens('cache_creation_input_tokens', 'cache_creation_input_tokens'),
    byModel,
  }
}
