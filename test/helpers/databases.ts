import postgres from 'postgres'

export interface DatabaseKind {
  name: 'pglite' | 'postgres'
  /** A fresh, empty database URL (postgres) or null (PGlite in a temp data dir). */
  create(): Promise<{ url: string | null; drop(): Promise<void> }>
}

const adminUrl = process.env.CCBROKER_TEST_DATABASE_URL

const pglite: DatabaseKind = {
  name: 'pglite',
  create: async () => ({ url: null, drop: async () => {} }),
}

const pg: DatabaseKind = {
  name: 'postgres',
  async create() {
    const admin = postgres(adminUrl!, { max: 1, onnotice: () => {} })
    const name = `ccb_t_${crypto.randomUUID().replaceAll('-', '').slice(0, 16)}`
    try {
      await admin.unsafe(`create database ${name}`)
    } finally {
      await admin.end()
    }
    const url = new URL(adminUrl!)
    url.pathname = `/${name}`
    return {
      url: url.toString(),
      async drop() {
        const admin = postgres(adminUrl!, { max: 1, onnotice: () => {} })
        try {
          await admin.unsafe(`drop database if exists ${name} with (force)`)
        } finally {
          await admin.end()
        }
      },
    }
  },
}

let warned = false
/** PGlite always; real Postgres when CCBROKER_TEST_DATABASE_URL is set (always in CI). */
export function databases(): DatabaseKind[] {
  if (!adminUrl && !warned) {
    warned = true
    console.log('skip: Postgres variants (set CCBROKER_TEST_DATABASE_URL to run them)')
  }
  return adminUrl ? [pglite, pg] : [pglite]
}
