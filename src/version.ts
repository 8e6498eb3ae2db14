import pkg from '../package.json' with { type: 'json' }

/** The broker's version (package.json), embedded in the compiled binary at build time. */
export const VERSION: string = pkg.version
