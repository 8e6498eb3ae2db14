import { loadConfig } from '../config.ts'
import { pendingMigrations } from '../db/migrate.ts'
import { openDatabase } from '../db/open.ts'
import { createLogger } from '../log.ts'
import type { Command } from './command.ts'

export const migrateCommand: Command = {
  name: 'migrate',
  summary: 'Apply the database migrations (a broker also does at start)',
  help: `Usage: cc-broker migrate [--dry-run]

Applies the migrations embedded in this executable to the configured database
(CCBROKER_DATABASE_URL, else the embedded PGlite in CCBROKER_DATA_DIR), under the same advisory
lock brokers take, and says what it applied.

  --dry-run        only list the migrations that would be applied`,
  options: { 'dry-run': { type: 'boolean' } },
  async run({ values }, io) {
    const config = loadConfig(io.env)
    const dryRun = values['dry-run'] === true
    const log = createLogger('warn')
    const peek = await openDatabase({ ...dbOf(config), log, migrate: false })
    let pending: string[]
    try {
      pending = await pendingMigrations(peek.db)
    } finally {
      await peek.close()
    }
    const where = config.databaseUrl ? 'the PostgreSQL database' : `PGlite in ${config.dataDir}`
    if (pending.length === 0) {
      io.out(`${where} is up to date\n`)
      return 0
    }
    if (dryRun) {
      io.out(`would apply to ${where}: ${pending.join(', ')}\n`)
      return 0
    }
    const db = await openDatabase({ ...dbOf(config), log })
    await db.close()
    io.out(`applied to ${where}: ${pending.join(', ')}\n`)
    return 0
  },
}

const dbOf = (config: ReturnType<typeof loadConfig>) => ({
  databaseUrl: config.databaseUrl,
  dataDir: config.dataDir,
})
