import ipaddr from 'ipaddr.js'

export type Address = ipaddr.IPv4 | ipaddr.IPv6

/** What the broker may fetch besides public unicast addresses (CCBROKER_FETCH_ALLOW). */
export interface AllowRules {
  /** Exact host names: lower case, no trailing dot. */
  readonly names: ReadonlySet<string>
  /** `*.example.com` kept as `.example.com`: any name below it, at any depth. */
  readonly suffixes: readonly string[]
  readonly cidrs: readonly (readonly [Address, number])[]
}

const label = '[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?'
const hostName = new RegExp(`^${label}(?:\\.${label})*$`)

/**
 * Allow entries: CIDRs (`10.0.0.0/8`, `fd00::/8`), single addresses, host names (exact, case-
 * insensitive) and `*.example.com`. Blank entries are skipped; a bad one throws, naming it.
 */
export function parseFetchAllow(list: readonly string[]): AllowRules {
  const names = new Set<string>()
  const suffixes: string[] = []
  const cidrs: [Address, number][] = []
  for (const raw of list) {
    const entry = raw.trim().toLowerCase()
    if (entry === '') continue
    const cidr = parseCidrEntry(entry)
    if (cidr === 'mapped')
      throw new Error(
        `"${raw}" is an IPv4-mapped IPv6 range; write it as an IPv4 range (a.b.c.d/n)`,
      )
    if (cidr) {
      cidrs.push(cidr)
      continue
    }
    const wildcard = entry.startsWith('*.')
    const name = normaliseName(wildcard ? entry.slice(2) : entry)
    if (!isHostName(name))
      throw new Error(
        `"${raw}" is neither a CIDR (like 10.0.0.0/8 or fd00::/8), an IP address nor a host ` +
          'name (like files.internal or *.corp.example; international names in their xn-- form)',
      )
    if (wildcard) suffixes.push(`.${name}`)
    else names.add(name)
  }
  return { names, suffixes, cidrs }
}

// ipaddr.js also reads `10/8` or `127.1` as IPv4 (0.0.0.10, 127.0.0.1): only four dotted
// decimals count, so an entry means what it looks like.
function parseCidrEntry(entry: string): [Address, number] | 'mapped' | null {
  const [addr = '', bits, extra] = entry.replace(/^\[(.*)\]/, '$1').split('/')
  if (extra !== undefined) return null
  let parsed: [Address, number]
  if (ipaddr.IPv4.isValidFourPartDecimal(addr)) {
    if (bits !== undefined && !ipaddr.IPv4.isValidCIDRFourPartDecimal(`${addr}/${bits}`))
      return null
    parsed = [ipaddr.IPv4.parse(addr), bits === undefined ? 32 : Number(bits)]
  } else if (ipaddr.IPv6.isValid(addr) && !addr.includes('%')) {
    if (bits !== undefined && !ipaddr.IPv6.isValidCIDR(`${addr}/${bits}`)) return null
    parsed = [ipaddr.IPv6.parse(spellIpv6(addr)), bits === undefined ? 128 : Number(bits)]
  } else {
    return null
  }
  const [net] = parsed
  // Addresses are checked after ::ffff:a.b.c.d becomes a.b.c.d, so such a range would never match.
  if (net.kind() === 'ipv6' && (net as ipaddr.IPv6).isIPv4MappedAddress()) return 'mapped'
  return parsed
}

/**
 * Whether a URL's hostname is an address: the URL parser has already turned every spelling of
 * IPv4 (2130706433, 0x7f.1, 0177.0.0.1, 127.1) into four decimals and put IPv6 in brackets.
 */
export function isIpLiteral(hostname: string): boolean {
  return hostname.startsWith('[') || ipaddr.IPv4.isValidFourPartDecimal(hostname)
}

export function normaliseName(hostname: string): string {
  return hostname.toLowerCase().replace(/\.$/, '')
}

function isHostName(name: string): boolean {
  if (name.length > 253 || !hostName.test(name)) return false
  // A name the URL parser reads as an address (`127.1`, `0x7f.1`) never reaches the name rules.
  try {
    return new URL(`http://${name}/`).hostname === name
  } catch {
    return false
  }
}

export function isNameAllowed(hostname: string, rules: AllowRules): boolean {
  const name = normaliseName(hostname)
  return rules.names.has(name) || rules.suffixes.some((s) => name.endsWith(s))
}

/**
 * An address as it is checked and then connected to: IPv4-mapped IPv6 (`::ffff:127.0.0.1`)
 * becomes its IPv4 address. Only canonical spellings; anything else throws.
 */
export function parseAddress(text: string): Address {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text)
  const zone = text.indexOf('%')
  if (zone < 0) return ipaddr.process(spellIpv6(text))
  return ipaddr.process(spellIpv6(text.slice(0, zone)) + text.slice(zone))
}

// ipaddr.js reads `::a.b.c.d` (as resolvers print ::/96) as `::ffff:a.b.c.d`; the URL parser
// spells the same address without dots, and throws on what is not IPv6.
function spellIpv6(text: string): string {
  return new URL(`http://[${text}]/`).hostname.slice(1, -1)
}

/** Public unicast, or inside an allowed CIDR. */
export function isAddressAllowed(addr: Address, rules: AllowRules): boolean {
  if (rules.cidrs.some(([net, bits]) => net.kind() === addr.kind() && addr.match(net, bits)))
    return true
  if (isIpv4Compatible(addr)) return false
  return addr.range() === 'unicast'
}

// ipaddr.js calls IPv4-compatible IPv6 (::a.b.c.d, deprecated) unicast, but it embeds any IPv4
// address, loopback and private ones included, and no real host has one.
function isIpv4Compatible(addr: Address): boolean {
  return (
    addr.kind() === 'ipv6' &&
    addr
      .toByteArray()
      .slice(0, 12)
      .every((b) => b === 0)
  )
}
