// Loopback servers for the outbound guard: an "internal" one on 127.0.0.1 that no refused fetch
// may reach, a "public" one on 127.0.0.2 (Linux routes all of 127/8 to lo) with redirects, and
// an HTTPS one with a self-signed certificate for a host name; and how tests read a refusal.
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { tempDir } from './temp-dir.ts'

export interface SeenRequest {
  method: string
  path: string
  host: string | null
}

function record(request: Request, seen: SeenRequest[]) {
  const url = new URL(request.url)
  seen.push({
    method: request.method,
    path: url.pathname + url.search,
    host: request.headers.get('host'),
  })
  return url
}

/** 127.0.0.1: answers everything with 200 "internal secret" and records it. */
export function startInternalServer() {
  const requests: SeenRequest[] = []
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch(request) {
      record(request, requests)
      return new Response('internal secret')
    },
  })
  return {
    port: Number(server.port),
    url: `http://127.0.0.1:${server.port}`,
    requests,
    [Symbol.asyncDispose]: () => server.stop(true),
  }
}

/**
 * 127.0.0.2. Routes: /file; /to?url=U (302 to U); /chain/N?url=U (N redirects, the last to U);
 * /hops/N (N relative redirects, then 200); /status/C?to=P (redirect with status C);
 * /no-location (302 without Location); /echo (the request as JSON); /hang (never answers).
 */
export function startPublicServer() {
  const requests: SeenRequest[] = []
  const hanging: (() => void)[] = []
  const waiting = new Map<string, () => void>()
  const redirect = (status: number, location: string) =>
    new Response(null, { status, headers: { location } })
  const server = Bun.serve({
    hostname: '127.0.0.2',
    port: 0,
    async fetch(request) {
      const url = record(request, requests)
      waiting.get(url.pathname)?.()
      const q = (name: string) => url.searchParams.get(name) ?? ''
      const [, route = '', arg = ''] = url.pathname.split('/')
      const n = Number(arg)
      if (route === 'file') return new Response('public bytes')
      if (route === 'to') return redirect(302, q('url'))
      if (route === 'chain')
        return redirect(
          302,
          n > 1 ? `/chain/${n - 1}?url=${encodeURIComponent(q('url'))}` : q('url'),
        )
      if (route === 'hops') return n > 0 ? redirect(302, `/hops/${n - 1}`) : new Response('arrived')
      if (route === 'status') return redirect(n, q('to'))
      if (route === 'no-location') return new Response(null, { status: 302 })
      if (route === 'echo')
        return Response.json({
          method: request.method,
          body: await request.text(),
          contentType: request.headers.get('content-type'),
          authorization: request.headers.get('authorization'),
        })
      if (route === 'hang') {
        await new Promise<void>((resolve) => hanging.push(resolve))
        return new Response('too late')
      }
      return new Response('no such route', { status: 404 })
    },
  })
  return {
    port: Number(server.port),
    url: `http://127.0.0.2:${server.port}`,
    requests,
    /** Resolves when a request for `path` arrives. */
    reached: (path: string) => new Promise<void>((resolve) => waiting.set(path, resolve)),
    async [Symbol.asyncDispose]() {
      for (const release of hanging) release()
      await server.stop(true)
    },
  }
}

/** A self-signed certificate (its own CA) for `name`, made with openssl. */
export async function selfSignedCert(name: string): Promise<{ cert: string; key: string }> {
  await using dir = await tempDir('ccbroker-cert-')
  const [certFile, keyFile] = [join(dir.path, 'cert.pem'), join(dir.path, 'key.pem')]
  await using proc = Bun.spawn(
    ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']
      .concat(['-nodes', '-days', '2', '-subj', `/CN=${name}`])
      .concat(['-addext', `subjectAltName=DNS:${name}`, '-keyout', keyFile, '-out', certFile]),
    { stdout: 'pipe', stderr: 'pipe' },
  )
  const [, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ])
  if (code !== 0) throw new Error(`openssl exited with ${code}: ${stderr}`)
  return { cert: await Bun.file(certFile).text(), key: await Bun.file(keyFile).text() }
}

export interface SeenTlsRequest {
  /** The name the client sent in SNI. */
  sni: string | false
  host: string | undefined
  path: string | undefined
}

/** HTTPS on 127.0.0.1 with `cert`; records the SNI and Host of every request. */
export async function startHttpsServer(tls: { cert: string; key: string }) {
  const requests: SeenTlsRequest[] = []
  const server = createServer(tls, (req, res) => {
    const socket = req.socket as typeof req.socket & { servername?: string | false }
    requests.push({ sni: socket.servername ?? false, host: req.headers.host, path: req.url })
    res.end('tls bytes')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    port,
    requests,
    [Symbol.asyncDispose]: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** The one message of a refused or unreachable address. */
export const notAllowed = (shown: string) =>
  `could not fetch ${shown}: the address is not allowed or not reachable`

/** What a rejection was, as a caller sees it; a fetch that succeeded is a failure here. */
export async function failureOf(promise: Promise<Response>) {
  const err = await promise.then(
    (res) => new Error(`expected a rejection, got ${res.status}`),
    (e: unknown) => e,
  )
  const { name, message, cause } = err as Error
  return { name, message, code: (cause as { code?: string } | undefined)?.code }
}

export const refusal = (shown: string) => ({
  name: 'OutboundRefusedError',
  message: notAllowed(shown),
  code: undefined,
})

/** A lookup that answers from a table, counts its calls, and knows no other name. */
export function tableLookup(table: Record<string, string[]>) {
  const calls: string[] = []
  const lookup = async (hostname: string) => {
    calls.push(hostname)
    const found = table[hostname]
    if (!found)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' })
    return found
  }
  return { lookup, calls }
}
