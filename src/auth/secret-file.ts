import { chmod, mkdir, open, readFile } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * The embedded default's worker-token secret: generated once, kept in the data directory (mode
 * 600) so tokens stay valid across restarts.
 */
export async function loadOrCreateSecret(dataDir: string): Promise<string> {
  const path = join(dataDir, 'jwt-secret')
  await mkdir(dataDir, { recursive: true })
  const existing = await readFile(path, 'utf8').catch(() => null)
  if (existing && existing.trim().length >= 32) return existing.trim()
  const secret = Buffer.from(crypto.getRandomValues(new Uint8Array(48))).toString('base64url')
  try {
    const handle = await open(path, 'wx', 0o600)
    await handle.writeFile(secret + '\n')
    await handle.close()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    return (await readFile(path, 'utf8')).trim()
  }
  await chmod(path, 0o600)
  return secret
}
