// Child process of ingest.ts: one PGlite broker start in a fresh process, as `bun run` would do
// it. Prints one JSON line: how long startBroker took, the time since the process began, and RSS.
// Usage: bun scripts/bench/cold-start.ts <data dir> [<src dir>]
import { brokerModules, DEFAULT_SRC } from './targets.ts'

const dataDir = process.argv[2]
if (!dataDir) throw new Error('usage: cold-start.ts <data dir> [<src dir>]')
const { startBroker, loadConfig, createLogger } = await brokerModules(
  process.argv[3] ?? DEFAULT_SRC,
)
const importedMs = performance.now()
const config = loadConfig({ CCBROKER_PORT: '0', CCBROKER_DATA_DIR: dataDir })
const t0 = performance.now()
const broker = await startBroker(config, createLogger('silent'))
const startMs = performance.now() - t0
const sinceProcessStartMs = performance.now()
const health = await fetch(`${broker.url}/healthz`)
const rssBytes = process.memoryUsage().rss
await broker.stop()
console.log(
  JSON.stringify({ importedMs, startMs, sinceProcessStartMs, rssBytes, health: health.status }),
)
