import { t } from 'elysia'

const ModelUsage = t.Object({
  input_tokens: t.Number(),
  output_tokens: t.Number(),
  cache_read_input_tokens: t.Number(),
  cache_creation_input_tokens: t.Number(),
  cost_usd: t.Number(),
})

/** Usage summed over worker results (from Claude Code's `result`: cost, usage, modelUsage). */
export const Usage = t.Object(
  {
    cost_usd: t.Number(),
    input_tokens: t.Number(),
    output_tokens: t.Number(),
    cache_read_input_tokens: t.Number(),
    cache_creation_input_tokens: t.Number(),
    results: t.Integer({ description: 'How many worker results were counted' }),
    by_model: t.Record(t.String(), ModelUsage),
  },
  { description: 'Spend and tokens, in all and per model' },
)
