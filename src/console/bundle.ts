import { join } from 'node:path'

/**
 * The console's browser code as one minified ES module, built by Bun. Imported as a macro
 * (`with { type: 'macro' }`), so it runs when the broker's code is transpiled or compiled and the
 * script lands in the binary as a string. Bun.build cannot run inside a macro (the bundler would
 * wait on itself), so this runs Bun's CLI.
 */
export function consoleScript(): string {
  const built = Bun.spawnSync(
    [
      process.execPath,
      'build',
      join(import.meta.dir, 'app/main.ts'),
      '--target=browser',
      '--format=esm',
      '--minify',
    ],
    { stdout: 'pipe', stderr: 'pipe', env: { ...process.env, NO_COLOR: '1' } },
  )
  if (built.exitCode !== 0)
    throw new Error(`bundling the console failed:\n${built.stderr.toString()}`)
  return built.stdout.toString()
}
