import { describe, expect, test } from 'bun:test'
import { readMigrationFiles } from 'drizzle-orm/migrator'
import { cp, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import postgres from 'postgres'
import { embeddedMigrationMeta } from '../../src/db/migrate.ts'
import { openDatabase } from '../../src/db/open.ts'
import { createLogger } from '../../src/log.ts'
import { databases } from '../helpers/databases.ts'

const ROOT = resolve(import.meta.dir, '../..')
const MIGRATIONS = join(ROOT, 'drizzle')

/**
 * Runs `drizzle-kit generate` on a copy of drizzle/ for the given schema file and answers the
 * files it added and what it printed. The work dir sits under the repo's .cache/ so that a
 * schema copy resolves drizzle-orm from the repo's node_modules.
 */
async function generate(schemaSource: string | null) {
  await mkdir(join(ROOT, '.cache'), { recursive: true })
  const dir = await mkdtemp(join(ROOT, '.cache', 'drift-'))
  try {
    await cp(MIGRATIONS, join(dir, 'drizzle'), { recursive: true })
    let schema = join(ROOT, 'src/db/schema.ts')
    if (schemaSource !== null) {
      schema = join(dir, 'schema.ts')
      await Bun.write(schema, schemaSource)
    }
    // drizzle-kit prefixes `out` with "./", so it has to be relative to the working directory.
    await Bun.write(
      join(dir, 'drizzle.config.ts'),
      `export default ${JSON.stringify({ dialect: 'postgresql', schema, out: './drizzle' })}\n`,
    )
    await using proc = Bun.spawn(
      [join(ROOT, 'node_modules/.bin/drizzle-kit'), 'generate', '--config', 'drizzle.config.ts'],
      { cwd: dir, stdout: 'pipe', stderr: 'pipe' },
    )
    const [stdout, stderr, exitCode] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ])
    const before = new Set(await listFiles(MIGRATIONS))
    const added = (await listFiles(join(dir, 'drizzle'))).filter((f) => !before.has(f))
    return { exitCode, output: stdout + stderr, added }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort()
}

describe('migrations', () => {
  test('src/db/migrations.gen.ts holds exactly what drizzle/ holds (run scripts/embed-migrations.ts)', () => {
    expect(embeddedMigrationMeta()).toEqual(readMigrationFiles({ migrationsFolder: MIGRATIONS }))
  })

  test('schema.ts and drizzle/ agree: drizzle-kit generate finds no changes', async () => {
    const result = await generate(null)
    expect(result).toEqual({
      exitCode: 0,
      output: expect.stringContaining('No schema changes, nothing to migrate'),
      added: [],
    })
  })

  test('a schema change without a migration is caught (drizzle-kit generate writes one)', async () => {
    const source = await Bun.file(join(ROOT, 'src/db/schema.ts')).text()
    const drifted = `${source}\nexport const driftProbe = pgTable('drift_probe', { id: text('id').primaryKey() })\n`
    const result = await generate(drifted)
    expect(result.exitCode).toBe(0)
    expect(result.output).not.toContain('No schema changes')
    expect(result.added).toEqual([
      expect.stringMatching(/^\d{4}_[a-z_]+\.sql$/),
      expect.stringMatching(/^meta\/\d{4}_snapshot\.json$/),
    ])
  })
})

const postgresKind = databases().find((d) => d.name === 'postgres')

describe.skipIf(!postgresKind)('migrating Postgres', () => {
  test('4 brokers migrating one empty database at once all succeed, each migration applied once', async () => {
    const database = await postgresKind!.create()
    try {
      const log = createLogger('silent')
      const opened = await Promise.allSettled(
        Array.from({ length: 4 }, () =>
          openDatabase({ databaseUrl: database.url, dataDir: '/nonexistent', log }),
        ),
      )
      expect(opened.map((r) => r.status)).toEqual([
        'fulfilled',
        'fulfilled',
        'fulfilled',
        'fulfilled',
      ])
      for (const r of opened) if (r.status === 'fulfilled') await r.value.close()

      const sql = postgres(database.url!, { max: 1, onnotice: () => {} })
      try {
        const applied =
          await sql`select hash, created_at from drizzle.__drizzle_migrations order by id`
        expect(applied.map((r) => ({ hash: r.hash, folderMillis: Number(r.created_at) }))).toEqual(
          embeddedMigrationMeta().map((m) => ({ hash: m.hash, folderMillis: m.folderMillis })),
        )
        const tables =
          await sql`select tablename from pg_tables where schemaname = 'public' order by 1`
        expect(tables.map((t) => t.tablename)).toContain('sessions')
      } finally {
        await sql.end()
      }
    } finally {
      await database.drop()
    }
  })
})
