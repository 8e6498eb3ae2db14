// Builds assets/pglite-seed.tar.gz: an empty PGlite cluster right after initdb, made by the
// installed PGlite. Rerun after upgrading @electric-sql/pglite (a test checks the version).
import { PGlite } from '@electric-sql/pglite'

const pkg = await Bun.file(
  new URL('../node_modules/@electric-sql/pglite/package.json', import.meta.url),
).json()
const pg = await PGlite.create({ dataDir: 'memory://' })
const dump = await pg.dumpDataDir('gzip')
await pg.close()
await Bun.write(new URL('../assets/pglite-seed.tar.gz', import.meta.url), dump)
await Bun.write(
  new URL('../assets/pglite-seed.json', import.meta.url),
  JSON.stringify({ pgliteVersion: pkg.version }, null, 2) + '\n',
)
console.log(`wrote assets/pglite-seed.tar.gz (${dump.size} bytes) for PGlite ${pkg.version}`)
