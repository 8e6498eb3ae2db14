import { treaty } from '@elysiajs/eden'
import { expect, test } from 'bun:test'
import type { App } from '../../src/index.ts'
import { startTestBroker } from '../../src/testing/index.ts'

// The route types travel with `type App`: this file is type-checked with the rest (npm run
// typecheck), so a route or a body that changes shape breaks it there.
test('Eden treaty<App> calls the broker with typed routes, bodies and answers', async () => {
  await using b = await startTestBroker()
  const api = treaty<App>(b.url)
  const made = await api.v1.sessions.post({ workspace_id: 'ws-eden', title: 'typed' })
  expect(made.status).toBe(201)
  const id: string = made.data!.session.id
  const got = await api.v1.sessions({ id }).get()
  expect(got.data?.session).toMatchObject({ id, workspace_id: 'ws-eden', title: 'typed' })
  const missing = await api.v1.sessions({ id: 'nope' }).get()
  expect(missing.status).toBe(404)
  expect(missing.error?.value).toMatchObject({ error: expect.stringContaining('nope') })
  if (false as boolean)
    // @ts-expect-error workspace_id is a string: a number does not type-check.
    await api.v1.sessions.post({ workspace_id: 7 })
})
