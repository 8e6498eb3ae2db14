import { readFileSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'

/** The fields of /proc/<pid>/stat after its `(comm)`, which may itself hold spaces. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/**
 * Whether a process exists and is not a zombie. A killed process can linger as a zombie that
 * still answers kill(pid, 0), so /proc decides where it can be read.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
  try {
    return statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'))[0] !== 'Z'
  } catch {
    return true
  }
}

/** The environment of a process (`KEY=VALUE` entries); empty when it cannot be read. */
export async function environOf(pid: number): Promise<string[]> {
  return (await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '')).split('\0')
}

/** The live processes of a process group (group leader included, zombies left out). */
export async function groupMembers(pgid: number): Promise<number[]> {
  const members: number[] = []
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '')
    if (!stat) continue
    const [state, , pgrp] = statFields(stat)
    if (state !== 'Z' && Number(pgrp) === pgid) members.push(Number(name))
  }
  return members
}
