import { processIo, runCli } from './cli/main.ts'

// The one executable: `cc-broker [command]` (serve by default). Serve returns only once the
// broker has stopped.
// A broker's files (data dir, database, spool, workspaces) are for its user only, whichever
// command makes them.
process.umask(0o077)
process.exitCode = await runCli(process.argv.slice(2), processIo(process.env))
process.exit()
