import { VERSION } from '../version.ts'
import type { Command } from './command.ts'

export const versionCommand: Command = {
  name: 'version',
  summary: 'Print the version',
  help: 'Usage: cc-broker version   (or cc-broker --version)',
  options: {},
  async run(_, io) {
    io.out(`cc-broker ${VERSION} (bun ${Bun.version}, ${process.platform}-${process.arch})\n`)
    return 0
  },
}
