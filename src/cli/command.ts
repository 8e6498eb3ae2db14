import { parseArgs, type ParseArgsConfig } from 'node:util'

/** Where a command writes and what it may ask; tests give their own. */
export interface CliIo {
  out(text: string): void
  err(text: string): void
  /** Whether stdout and stdin are a terminal (spinners, prompts). */
  tty: boolean
  /** Reads one line of an answer from the terminal; null when there is none. */
  ask(question: string): Promise<string | null>
  env: Record<string, string | undefined>
}

export interface Command {
  name: string
  summary: string
  /** The usage lines and option help shown by `--help`. */
  help: string
  options: NonNullable<ParseArgsConfig['options']>
  run(args: { values: Record<string, unknown>; positionals: string[] }, io: CliIo): Promise<number>
}

/** A bad command line: its message is shown with a pointer to --help, exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

export const helpOption = { help: { type: 'boolean', short: 'h' } } as const

/** The command's options parsed strictly: an unknown option or a missing value is a UsageError. */
export function parseCommand(command: Command, argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: { ...helpOption, ...command.options },
      allowPositionals: true,
      strict: true,
    })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

/** `--url` / `--api-key` (or CCBROKER_URL / CCBROKER_API_KEY): how a command reaches a broker. */
export const brokerOptions = {
  url: { type: 'string' },
  'api-key': { type: 'string' },
} as const

export const brokerHelp = `  --url URL        the broker (CCBROKER_URL, default http://127.0.0.1:8085)
  --api-key KEY    an API key, when the broker has CCBROKER_API_KEYS (CCBROKER_API_KEY)`

export function brokerOf(values: Record<string, unknown>, env: CliIo['env']) {
  return {
    url: String(values.url ?? env.CCBROKER_URL ?? 'http://127.0.0.1:8085'),
    apiKey: (values['api-key'] as string | undefined) ?? env.CCBROKER_API_KEY ?? undefined,
  }
}
