// `cc-broker`: the broker as a library — start one from a configuration, in your own process.
export { startBroker, type Broker } from './broker.ts'
export { loadConfig, ConfigError, type Config } from './config.ts'
export { createLogger, type Logger, type LogLevel } from './log.ts'
export type { App } from './api/app.ts'
export { VERSION } from './version.ts'
