/** Percentiles of a sample, nearest rank; the input is sorted in place. */
export function percentiles(values: Float64Array | number[], ps: number[]): number[] {
  const sorted = values instanceof Float64Array ? values.sort() : values.sort((a, b) => a - b)
  if (sorted.length === 0) return ps.map(() => NaN)
  return ps.map(
    (p) =>
      sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!,
  )
}

export const ms = (v: number, digits = 1) =>
  Number.isFinite(v) ? `${v.toFixed(digits)} ms` : 'n/a'

export const rate = (v: number) =>
  Number.isFinite(v) ? `${Math.round(v).toLocaleString('en-US')}/s` : 'n/a'

export const mib = (bytes: number) => `${Math.round(bytes / 1024 / 1024)} MiB`

export const median = (values: number[]) => percentiles([...values], [50])[0]!

/** A markdown table; cells are padded so the plain text reads as a table too. */
export function markdownTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`
  return [
    line(head),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.map(line),
  ].join('\n')
}
