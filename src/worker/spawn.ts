import type { Logger } from '../log.ts'

export interface SpawnedWorker {
  pid: number
  exited: Promise<number>
  stdin: import('bun').FileSink | null
  stderrTail(): string
  signal(sig: 'SIGTERM' | 'SIGKILL'): void
}

export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder()
  let buffer = ''
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk, { stream: true })
    let i: number
    while ((i = buffer.indexOf('\n')) >= 0) {
      yield buffer.slice(0, i)
      buffer = buffer.slice(i + 1)
    }
  }
  buffer += decoder.decode()
  if (buffer) yield buffer
}

const spawnWorker = (opts: {
  bin: string
  args: string[]
  env: Record<string, string>
  cwd: string
  stdin: boolean
}) =>
  Bun.spawn([opts.bin, ...opts.args], {
    cwd: opts.cwd,
    env: opts.env,
    stdin: opts.stdin ? 'pipe' : 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    detached: true,
  })

/**
 * Starts Claude Code in its own process group (so the whole tree can be signalled), with exactly
 * the environment given (Bun.spawn's env replaces, it does not merge). Stderr goes to the log,
 * tagged; stdout goes to `onStdoutLine` when given, else to the log.
 */
export function spawnClaude(opts: {
  bin: string
  args: string[]
  env: Record<string, string>
  cwd: string
  stdin: boolean
  log: Logger
  onStdoutLine?: (line: string) => void | Promise<void>
}): SpawnedWorker {
  // The worker inherits the umask at spawn: its transcripts and files are its user's only,
  // whatever the umask of the process that embeds the broker. Spawning is synchronous, so the
  // broker's own umask is back before anything else runs.
  const umask = process.umask(0o077)
  let proc: ReturnType<typeof spawnWorker>
  try {
    proc = spawnWorker(opts)
  } finally {
    process.umask(umask)
  }
  const tail: string[] = []
  const stderrDone = (async () => {
    for await (const line of readLines(proc.stderr as ReadableStream<Uint8Array>)) {
      if (!line.trim()) continue
      tail.push(line)
      if (tail.length > 20) tail.shift()
      opts.log.info('worker stderr', { line })
    }
  })().catch(() => {})
  const stdoutDone = (async () => {
    for await (const line of readLines(proc.stdout as ReadableStream<Uint8Array>)) {
      if (!line.trim()) continue
      if (opts.onStdoutLine) await opts.onStdoutLine(line)
      else opts.log.info('worker stdout', { line })
    }
  })().catch((err) => opts.log.error('worker stdout reader failed', { err }))
  // Completion is the process's exit, not pipe EOF: a grandchild may hold the pipes open long
  // after the worker is gone. Stdout is drained first when it ends with the process.
  const exited = proc.exited.then(async (code) => {
    // What the worker left in its group (a background command, a stuck tool) goes with it. The
    // group id cannot be reused while any member lives, so this reaches only the worker's own.
    try {
      process.kill(-proc.pid, 'SIGKILL')
    } catch {
      // The group is empty.
    }
    await Promise.race([Promise.all([stdoutDone, stderrDone]), Bun.sleep(500)])
    return code
  })
  return {
    pid: proc.pid,
    exited,
    stdin: opts.stdin ? (proc.stdin as import('bun').FileSink) : null,
    stderrTail: () => tail.join('\n'),
    signal(sig) {
      try {
        process.kill(-proc.pid, sig)
      } catch {
        // The group is already gone.
      }
    },
  }
}
