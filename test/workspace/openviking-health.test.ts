import { describe, expect, test } from 'bun:test'
import {
  checkOpenViking,
  isSupportedVersion,
  minOpenVikingVersion,
} from '../../src/workspace/openviking-health.ts'
import { createFakeOpenViking } from '../fakes/openviking.ts'

const key = 'user-key'
const rootKey = 'root-key'

describe('checkOpenViking', () => {
  test.concurrent('v0.4.16 with a user key is ok, and the minimum is v0.4.16', async () => {
    await using fake = createFakeOpenViking({ apiKey: key, rootKey })
    expect(minOpenVikingVersion).toBe('0.4.16')
    expect(await checkOpenViking({ url: fake.url, apiKey: key })).toEqual({
      ok: true,
      version: '0.4.16',
      role: 'user',
      problem: null,
    })
  })

  test.concurrent('v0.4.15 is too old: its batch-write refuses the store', async () => {
    await using fake = createFakeOpenViking({ version: '0.4.15', apiKey: key })
    expect(await checkOpenViking({ url: `${fake.url}/`, apiKey: key })).toEqual({
      ok: false,
      version: '0.4.15',
      role: 'user',
      problem: `openviking at ${fake.url} runs v0.4.15; cc-broker needs v0.4.16 or newer (older batch-write refuses its writes)`,
    })
  })

  test.concurrent('a ROOT key is a problem: data APIs answer it with 403', async () => {
    await using fake = createFakeOpenViking({ apiKey: key, rootKey })
    expect(await checkOpenViking({ url: fake.url, apiKey: rootKey })).toEqual({
      ok: false,
      version: '0.4.16',
      role: 'root',
      problem:
        'the API key is a ROOT key, which OpenViking answers with 403 PERMISSION_DENIED on data ' +
        'APIs; use a user or admin key of the account',
    })
  })

  test.concurrent('a ROOT key on v0.4.15 reports both problems', async () => {
    await using fake = createFakeOpenViking({ version: '0.4.15', apiKey: key, rootKey })
    expect(await checkOpenViking({ url: fake.url, apiKey: rootKey })).toEqual({
      ok: false,
      version: '0.4.15',
      role: 'root',
      problem:
        `openviking at ${fake.url} runs v0.4.15; cc-broker needs v0.4.16 or newer (older ` +
        'batch-write refuses its writes); the API key is a ROOT key, which OpenViking answers ' +
        'with 403 PERMISSION_DENIED on data APIs; use a user or admin key of the account',
    })
  })

  test.concurrent('a wrong key or none is a problem in api_key mode, not in dev mode', async () => {
    await using fake = createFakeOpenViking({ apiKey: key })
    expect(await checkOpenViking({ url: fake.url, apiKey: 'nope' })).toEqual({
      ok: false,
      version: '0.4.16',
      role: null,
      problem: `openviking at ${fake.url} does not accept the API key (no identity for it)`,
    })
    expect(await checkOpenViking({ url: fake.url })).toEqual({
      ok: false,
      version: '0.4.16',
      role: null,
      problem: `openviking at ${fake.url} requires an API key (CCBROKER_OPENVIKING_API_KEY)`,
    })
    await using dev = createFakeOpenViking()
    expect(await checkOpenViking({ url: dev.url })).toEqual({
      ok: true,
      version: '0.4.16',
      role: null,
      problem: null,
    })
  })

  test.concurrent('an unreachable server is a problem with no version', async () => {
    const fake = createFakeOpenViking({ apiKey: key })
    await fake.stop()
    const got = await checkOpenViking({ url: fake.url, apiKey: key })
    expect({ ...got, problem: null }).toEqual({
      ok: false,
      version: null,
      role: null,
      problem: null,
    })
    expect(got.problem).toStartWith(
      `openviking at ${fake.url} is unreachable or not OpenViking: GET /health failed: `,
    )
  })

  test('a version counts from its release numbers; a pre-release of the minimum is older', () => {
    const versions = [
      '0.4.16',
      'v0.4.16',
      '0.4.16.post1',
      '0.4.17.dev3+g1a2b3c',
      '0.5.0',
      '1.0',
      '0.4.16.dev2',
      '0.4.16rc1',
      '0.4.15',
      '0.4.12',
      '0.3.24',
      'unknown',
    ]
    expect(Object.fromEntries(versions.map((v) => [v, isSupportedVersion(v)]))).toEqual({
      '0.4.16': true,
      'v0.4.16': true,
      '0.4.16.post1': true,
      '0.4.17.dev3+g1a2b3c': true,
      '0.5.0': true,
      '1.0': true,
      '0.4.16.dev2': false,
      '0.4.16rc1': false,
      '0.4.15': false,
      '0.4.12': false,
      '0.3.24': false,
      unknown: false,
    })
  })
})
