// The console's stylesheet, imported as a file so `bun build --compile` embeds it.
declare module '*/console/console.css' {
  const path: string
  export default path
}
