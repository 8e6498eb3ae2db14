import { startBroker, type Broker } from '../broker.ts'
import { ConfigError, loadConfig } from '../config.ts'
import { createLogger } from '../log.ts'
import type { Command } from './command.ts'

export const serveCommand: Command = {
  name: 'serve',
  summary: 'Run the broker (the default command)',
  help: `Usage: cc-broker [serve]

Runs the broker with its configuration from CCBROKER_* environment variables (see the README),
until SIGTERM or SIGINT, which hand running turns back to the queue first.`,
  options: {},
  async run(_, io) {
    // A service's output is its JSON log, failures to start included.
    const log = createLogger('info')
    let broker: Broker
    try {
      broker = await startBroker(loadConfig(io.env))
    } catch (err) {
      if (err instanceof ConfigError) log.error(`invalid configuration: ${err.message}`)
      else log.error('broker failed to start', { err })
      return 1
    }
    const stopped = Promise.withResolvers<number>()
    let stopping = false
    const stop = async (signal: string) => {
      if (stopping) return
      stopping = true
      broker.log.info('stopping', { signal })
      await broker.stop()
      stopped.resolve(0)
    }
    process.on('SIGTERM', () => void stop('SIGTERM'))
    process.on('SIGINT', () => void stop('SIGINT'))
    return stopped.promise
  },
}
