import { resolve } from 'node:path'
import { lineReader } from './lines.ts'

const ROOT = resolve(import.meta.dir, '../..')

/** A port nothing listens on right now, so every broker generation can take the same one. */
export function freePort(): number {
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response() })
  const port = server.port!
  server.stop(true)
  return port
}

/**
 * `bun src/main.ts` as its own process, as in production; answers once it listens. `prefix`
 * runs it through another command (e.g. `unshare` for a host name of its own).
 */
export async function spawnBroker(env: Record<string, string>, opts: { prefix?: string[] } = {}) {
  const proc = Bun.spawn(
    [...(opts.prefix ?? []), process.execPath, '--no-env-file', 'src/main.ts'],
    {
      cwd: ROOT,
      env,
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
    },
  )
  const stderr = lineReader(proc.stderr)
  void lineReader(proc.stdout)
  const listening = JSON.parse(await stderr.until((l) => l.includes('"broker listening"')))
  const url = listening.url as string
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(url + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    return { status: res.status, body: (await res.json()) as any }
  }
  /** The JSON log records the broker wrote so far. */
  const logs = () =>
    stderr.lines.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, any>]
      } catch {
        return []
      }
    })
  return {
    proc,
    url,
    api,
    logs,
    /** SIGTERM (a graceful stop); answers the exit code. */
    async stop() {
      proc.kill('SIGTERM')
      return proc.exited
    },
    async kill() {
      proc.kill('SIGKILL')
      await proc.exited
    },
    [Symbol.asyncDispose]: async () => {
      proc.kill('SIGKILL')
      await proc.exited
    },
  }
}
export type BrokerProcess = Awaited<ReturnType<typeof spawnBroker>>
