import { resolve } from 'node:path'
import { lineReader } from './lines.ts'

const MAIN = resolve(import.meta.dir, '../../src/main.ts')

/** `cc-broker` from source (`bun src/main.ts`), or the compiled binary when `bin` is given. */
const argvOf = (args: string[], bin?: string) =>
  bin ? [bin, ...args] : [process.execPath, '--no-env-file', MAIN, ...args]

export interface CliRun {
  exitCode: number
  stdout: string
  stderr: string
}

/** Runs one command line to its end with only `env` (plus PATH) in `cwd`. */
export async function runCli(
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; bin?: string } = {},
): Promise<CliRun> {
  const proc = Bun.spawn(argvOf(args, opts.bin), {
    cwd: opts.cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...opts.env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ])
  return { exitCode, stdout, stderr }
}

/** A command line left running: its output read as lines, for a test to wait on and signal. */
export function spawnCli(
  args: string[],
  opts: { env?: Record<string, string>; bin?: string } = {},
) {
  const proc = Bun.spawn(argvOf(args, opts.bin), {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...opts.env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const stdout = lineReader(proc.stdout)
  const stderr = lineReader(proc.stderr)
  return {
    proc,
    stdout,
    stderr,
    /** Waits for the exit; answers the code and all the output. */
    async finished(): Promise<CliRun> {
      const [exitCode] = await Promise.all([proc.exited, stdout.done, stderr.done])
      return { exitCode, stdout: stdout.lines.join('\n'), stderr: stderr.lines.join('\n') }
    },
    [Symbol.asyncDispose]: async () => {
      proc.kill('SIGKILL')
      await proc.exited
    },
  }
}
