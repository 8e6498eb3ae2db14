import { startBroker } from './broker.ts'
import { ConfigError, loadConfig } from './config.ts'
import { createLogger } from './log.ts'

const log = createLogger('info')
// A broker's files (data dir, database, spool, workspaces) are for its user only.
process.umask(0o077)
try {
  const config = loadConfig(process.env)
  const broker = await startBroker(config)
  let stopping = false
  const stop = async (signal: string) => {
    if (stopping) return
    stopping = true
    broker.log.info('stopping', { signal })
    await broker.stop()
    process.exit(0)
  }
  process.on('SIGTERM', () => void stop('SIGTERM'))
  process.on('SIGINT', () => void stop('SIGINT'))
} catch (err) {
  if (err instanceof ConfigError) log.error(`invalid configuration: ${err.message}`)
  else log.error('broker failed to start', { err })
  process.exit(1)
}
