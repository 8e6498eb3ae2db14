import { createInterface } from 'node:readline/promises'
import { ConfigError } from '../config.ts'
import { BrokerApiError } from '../client/errors.ts'
import { VERSION } from '../version.ts'
import { parseCommand, UsageError, type CliIo, type Command } from './command.ts'
import { doctorCommand } from './doctor.ts'
import { eventsCommand } from './events.ts'
import { migrateCommand } from './migrate.ts'
import { serveCommand } from './serve.ts'
import { sessionsCommand } from './sessions.ts'
import { turnCommand } from './turn.ts'
import { versionCommand } from './version.ts'

const COMMANDS: Command[] = [
  serveCommand,
  migrateCommand,
  doctorCommand,
  turnCommand,
  sessionsCommand,
  eventsCommand,
  versionCommand,
]

const usage = () =>
  [
    `cc-broker ${VERSION}: runs Claude Code as a service`,
    '',
    'Usage: cc-broker [command] [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`),
    '',
    'Run `cc-broker <command> --help` for a command; with no command, `serve`.',
    '',
  ].join('\n')

/** The terminal: stdout for results, stderr for the rest, a prompt when on a TTY. */
export function processIo(env: Record<string, string | undefined>): CliIo {
  return {
    out: (t) => void process.stdout.write(t),
    err: (t) => void process.stderr.write(t),
    tty: Boolean(process.stdout.isTTY && process.stdin.isTTY),
    async ask(question) {
      const rl = createInterface({ input: process.stdin, output: process.stderr })
      try {
        return await rl.question(question)
      } finally {
        rl.close()
      }
    },
    env,
  }
}

/** Runs one command line; answers the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [first, ...rest] = argv
  if (first === '--help' || first === '-h' || first === 'help') {
    io.out(usage())
    return 0
  }
  if (first === '--version' || first === '-v')
    return versionCommand.run({ values: {}, positionals: [] }, io)
  const named = first !== undefined && !first.startsWith('-')
  const command = named ? COMMANDS.find((c) => c.name === first) : serveCommand
  if (!command) {
    io.err(`cc-broker: unknown command "${first}"; run cc-broker --help for the list\n`)
    return 2
  }
  try {
    const args = parseCommand(command, named ? rest : argv)
    if (args.values.help) {
      io.out(`${command.help}\n`)
      return 0
    }
    return await command.run(args, io)
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`cc-broker ${command.name}: ${err.message}; run cc-broker ${command.name} --help\n`)
      return 2
    }
    if (err instanceof ConfigError) {
      io.err(`cc-broker ${command.name}: invalid configuration: ${err.message}\n`)
      return 1
    }
    if (err instanceof BrokerApiError) {
      io.err(`cc-broker ${command.name}: ${err.message}\n`)
      return 1
    }
    const code = (err as { code?: string }).code
    if (code === 'ECONNREFUSED' || code === 'ConnectionRefused') {
      io.err(`cc-broker ${command.name}: connection refused (is a broker running there?)\n`)
      return 1
    }
    io.err(`cc-broker ${command.name}: ${(err as Error).message ?? err}\n`)
    return 1
  }
}
