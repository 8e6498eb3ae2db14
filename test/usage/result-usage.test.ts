import { expect, test } from 'bun:test'
import { resultUsage } from '../../src/usage/result-usage.ts'

// Shapes measured from real Claude Code against the fake Anthropic API (test/e2e/NOTES.md).
const opus = (input: number, output: number, cost: number) => ({
  inputTokens: input,
  outputTokens: output,
  cacheReadInputTokens: 0,
  cacheCreationInputTokens: 0,
  webSearchRequests: 0,
  costUSD: cost,
  contextWindow: 1000000,
  maxOutputTokens: 128000,
})

test('2.1.332 on --resume: the conversation’s totals are cumulative; the result’s own part counts', () => {
  expect(
    resultUsage({
      type: 'result',
      total_cost_usd: 0.00072,
      usage: { input_tokens: 10, output_tokens: 13, cache_read_input_tokens: 0 },
      modelUsage: { 'claude-opus-5-5': opus(20, 32, 0.00072) },
      model_usage_since_last_result: { 'claude-opus-5-5': opus(10, 13, 0.0003) },
    }),
  ).toEqual({
    costUsd: 0.0003,
    inputTokens: 10,
    outputTokens: 13,
    cacheReadInputTokens: 0,
    cacheCreationInputTokens: 0,
    byModel: {
      'claude-opus-5-5': {
        input_tokens: 10,
        output_tokens: 13,
        cache_read_input_tokens: 0,
        cache_creation_input_tokens: 0,
        cost_usd: 0.0003,
      },
    },
  })
})

test('2.1.120: totals of this process (the turn); a budget stop zeroes `usage` but not modelUsage', () => {
  expect(
    resultUsage({
      type: 'result',
      subtype: 'error_max_budget_usd',
      total_cost_usd: 0.00033,
      usage: { input_tokens: 0, output_tokens: 0 },
      modelUsage: { 'claude-sonnet-4-6': opus(10, 20, 0.00033) },
    }),
  ).toMatchObject({ costUsd: 0.00033, inputTokens: 10, outputTokens: 20 })
})

test('no modelUsage: the cost and usage fields; nothing at all: zeros', () => {
  expect(
    resultUsage({ total_cost_usd: 0.5, usage: { input_tokens: 3, output_tokens: 4 } }),
  ).toEqual({
    costUsd: 0.5,
    inputTokens: 3,
    outputTokens: 4,
    cacheReadInputTokens: 0,
    cacheCreationInputTokens: 0,
    byModel: {},
  })
  expect(resultUsage({}).costUsd).toBe(0)
})

test('2.1.120 in a warm worker: totals count the process, so a result’s share is what it adds to the last one', () => {
  const first = {
    type: 'result',
    total_cost_usd: 0.0003,
    modelUsage: { 'claude-opus-5-5': opus(10, 13, 0.0003) },
  }
  const second = {
    type: 'result',
    total_cost_usd: 0.0005,
    modelUsage: { 'claude-opus-5-5': opus(25, 20, 0.0005) },
  }
  const u = resultUsage(second, first)
  expect(u.costUsd).toBeCloseTo(0.0002, 10)
  expect([u.inputTokens, u.outputTokens]).toEqual([15, 7])
  expect(u.byModel['claude-opus-5-5']!.cost_usd).toBeCloseTo(0.0002, 10)
  // 2.1.332 says what the result cost by itself: the previous one does not matter.
  const since = {
    ...second,
    model_usage_since_last_result: { 'claude-opus-5-5': opus(1, 2, 0.0001) },
  }
  expect(resultUsage(since, first).costUsd).toBe(0.0001)
})
