import { describe, expect, test } from 'bun:test'
import {
  isAddressAllowed,
  parseAddress,
  parseFetchAllow,
  type AllowRules,
} from '../../src/outbound/addresses.ts'

const shape = (rules: AllowRules) => ({
  names: [...rules.names],
  suffixes: rules.suffixes,
  cidrs: rules.cidrs.map(([net, bits]) => `${net.toString()}/${bits}`),
})

describe('parseFetchAllow', () => {
  test('reads CIDRs, single addresses, names and wildcards; skips blanks', () => {
    const rules = parseFetchAllow([
      '10.0.0.0/8',
      ' 127.0.0.1/32 ',
      '::1/128',
      '[fd00::]/8',
      '192.168.1.5',
      'fd00::7',
      '::10.0.0.1/128',
      'Files.Internal.',
      '*.Corp.Example',
      '',
    ])
    expect(shape(rules)).toEqual({
      names: ['files.internal'],
      suffixes: ['.corp.example'],
      cidrs: [
        '10.0.0.0/8',
        '127.0.0.1/32',
        '::1/128',
        'fd00::/8',
        '192.168.1.5/32',
        'fd00::7/128',
        '::a00:1/128',
      ],
    })
  })

  test.each([
    ['10/8', 'is neither a CIDR'],
    ['127.1', 'is neither a CIDR'],
    ['0x7f.0.0.1', 'is neither a CIDR'],
    ['10.0.0.0/33', 'is neither a CIDR'],
    ['fd00::/129', 'is neither a CIDR'],
    ['10.0.0.0/8/8', 'is neither a CIDR'],
    ['http://files.internal', 'is neither a CIDR'],
    ['files internal', 'is neither a CIDR'],
    ['*', 'is neither a CIDR'],
    ['*.*.example', 'is neither a CIDR'],
    ['bücher.example', 'is neither a CIDR'],
    ['::ffff:10.0.0.0/104', 'is an IPv4-mapped IPv6 range'],
    ['::ffff:7f00:1', 'is an IPv4-mapped IPv6 range'],
  ])('%s → an error naming it', (entry, what) => {
    expect(() => parseFetchAllow(['files.internal', entry])).toThrow(`"${entry}" ${what}`)
  })
})

describe('isAddressAllowed', () => {
  const none = parseFetchAllow([])

  test.each([
    '127.0.0.1',
    '127.255.0.9',
    '10.0.0.1',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.0.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '0.1.2.3',
    '224.0.0.251',
    '255.255.255.255',
    '240.0.0.1',
    '192.0.2.1',
    '198.18.0.1',
    '::',
    '::1',
    '::ffff:127.0.0.1',
    '::ffff:10.0.0.1',
    '::127.0.0.1',
    '::8.8.8.8',
    'fc00::1',
    'fd12:3456::1',
    'fe80::1',
    'fe80::1%eth0',
    'ff02::1',
    '64:ff9b::7f00:1',
    '2002:7f00:1::',
    '2001::1',
    '2001:db8::1',
  ])('%s is refused', (text) => {
    expect(isAddressAllowed(parseAddress(text), none)).toBe(false)
  })

  test.each(['93.184.216.34', '8.8.8.8', '172.32.0.1', '::ffff:8.8.8.8', '2606:4700::1111'])(
    '%s (public unicast) is allowed',
    (text) => {
      expect(isAddressAllowed(parseAddress(text), none)).toBe(true)
    },
  )

  test('an allowed CIDR lets its addresses through, mapped ones as IPv4, and no others', () => {
    const rules = parseFetchAllow(['10.0.0.0/8', 'fd00::/8'])
    const allowed = (text: string) => isAddressAllowed(parseAddress(text), rules)
    expect(
      ['10.9.8.7', '::ffff:10.9.8.7', 'fd00::2', '11.0.0.1', '192.168.0.1', 'fc00::1'].map(allowed),
    ).toEqual([true, true, true, true, false, false])
  })
})
