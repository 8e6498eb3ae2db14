// PGlite's wasm and data files, imported as files so `bun build --compile` embeds them
// (without these options the binary dies on ENOENT /$bunfs/root/pglite.data).
import pgliteWasmPath from '@electric-sql/pglite/pglite.wasm' with { type: 'file' }
import initdbWasmPath from '@electric-sql/pglite/initdb.wasm' with { type: 'file' }
import pgliteDataPath from '@electric-sql/pglite/pglite.data' with { type: 'file' }
// An initdb'd, empty cluster (scripts/make-pglite-seed.ts): a fresh data directory is filled from
// it in about a second instead of running initdb (4-5 s, ~0.9 GB peak RSS) every time.
import seedPath from '../../assets/pglite-seed.tar.gz' with { type: 'file' }

export async function pgliteAssetOptions() {
  const [pgliteWasmModule, initdbWasmModule] = await Promise.all([
    WebAssembly.compile(await Bun.file(pgliteWasmPath).arrayBuffer()),
    WebAssembly.compile(await Bun.file(initdbWasmPath).arrayBuffer()),
  ])
  return { pgliteWasmModule, initdbWasmModule, fsBundle: Bun.file(pgliteDataPath) }
}

export const pgliteSeed = () => Bun.file(seedPath)
