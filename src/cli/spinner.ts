import type { CliIo } from './command.ts'

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']

/**
 * A spinner with the time since `since` on stderr while nothing else is written: cleared
 * before any output (pause) and drawn again only at the start of a line (resume).
 */
export function startSpinner(io: Pick<CliIo, 'err'>, since: number) {
  let frame = 0
  let drawn = false
  let active = true
  const clear = () => {
    if (drawn) io.err('\r\x1b[2K')
    drawn = false
  }
  const timer = setInterval(() => {
    if (!active) return
    const elapsed = ((Date.now() - since) / 1000).toFixed(1)
    io.err(`\r\x1b[2K${FRAMES[frame++ % FRAMES.length]} working… ${elapsed} s`)
    drawn = true
  }, 100)
  return {
    pause() {
      active = false
      clear()
    },
    resume(atLineStart: boolean) {
      active = atLineStart
    },
    stop() {
      clearInterval(timer)
      clear()
    },
  }
}
