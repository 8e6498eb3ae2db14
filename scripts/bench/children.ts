// Helper processes of the benchmark (SSE listeners, the producer) and their clocks. Each process
// keeps its own performance.now(); the parent estimates each child's offset by ping-pong over
// IPC before any load starts, so receipt and ack times can be compared on one timeline.
import type { Subprocess } from 'bun'

export type Message = { type: string } & Record<string, unknown>

export interface Child extends AsyncDisposable {
  proc: Subprocess
  send(message: Message): void
  /** The next message of this type (messages of other types wait for their own caller). */
  next<T extends Message = Message>(type: string, deadlineMs?: number): Promise<T>
  /** child clock − parent clock, in ms; `rttMs` bounds the error (± half of it). */
  clock: { offsetMs: number; rttMs: number }
}

export async function spawnChild(script: string): Promise<Child> {
  const inbox = new Map<string, Message[]>()
  const waiters = new Map<string, (m: Message) => void>()
  const proc = Bun.spawn([process.execPath, new URL(script, import.meta.url).pathname], {
    stdio: ['ignore', 'inherit', 'inherit'],
    ipc(message: Message) {
      const waiter = waiters.get(message.type)
      if (waiter) {
        waiters.delete(message.type)
        waiter(message)
      } else inbox.set(message.type, [...(inbox.get(message.type) ?? []), message])
    },
  })
  const next = <T extends Message>(type: string, deadlineMs = 60_000) =>
    new Promise<T>((resolve, reject) => {
      const queued = inbox.get(type)?.shift()
      if (queued) return resolve(queued as T)
      const timer = setTimeout(() => {
        waiters.delete(type)
        reject(new Error(`${script}: no "${type}" message within ${deadlineMs} ms`))
      }, deadlineMs)
      void proc.exited.then((code) => {
        if (!waiters.has(type)) return
        clearTimeout(timer)
        waiters.delete(type)
        reject(new Error(`${script} exited with ${code} while waiting for "${type}"`))
      })
      waiters.set(type, (m) => {
        clearTimeout(timer)
        resolve(m as T)
      })
    })
  const child: Child = {
    proc,
    send: (message) => proc.send(message),
    next,
    clock: { offsetMs: 0, rttMs: Infinity },
    async [Symbol.asyncDispose]() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill()
      await proc.exited
    },
  }
  await next('hello', 10_000)
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now()
    child.send({ type: 'ping' })
    const { tc } = await next<Message & { tc: number }>('pong')
    const t1 = performance.now()
    if (t1 - t0 < child.clock.rttMs) child.clock = { offsetMs: tc - (t0 + t1) / 2, rttMs: t1 - t0 }
  }
  return child
}

/** Child side: answers pings and hands every other message to `onMessage`. */
export function serveParent(onMessage: (m: Message) => void | Promise<void>) {
  const send = (m: Message) => process.send!(m)
  process.on('message', (m: Message) => {
    if (m.type === 'ping') return send({ type: 'pong', tc: performance.now() })
    Promise.resolve(onMessage(m)).catch((err) => {
      console.error(err)
      process.exit(1)
    })
  })
  // A parent that died without killing us leaves nothing to report to.
  process.on('disconnect', () => process.exit(0))
  send({ type: 'hello' })
  return send
}
