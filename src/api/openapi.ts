import { toOpenAPISchema } from '@elysiajs/openapi'
import type { AnyElysia, InternalRoute } from 'elysia'
import { securitySchemes } from './security.ts'

// 3.1: TypeBox writes JSON Schema 2020-12 (`type: "null"`, `const`), which 3.0 does not allow.
const OPENAPI_VERSION = '3.1.0'

const info = {
  title: 'cc-broker',
  version: '0.1.0',
  description:
    'Runs Claude Code as a headless worker per turn, with a durable event log. External routes ' +
    'take `Authorization: Bearer <api key>` when keys are configured; worker routes take the ' +
    'worker JWT from POST /v1/sessions/{id}/bridge. Every request body is JSON (anything else ' +
    'is a 415), and every error is JSON `{"error": "…"}`.',
}

interface Introspectable {
  getGlobalRoutes(): InternalRoute[]
  getGlobalDefinitions(): unknown
}

/**
 * The app's routes as the generator should read them. Our one body parser (json-body.ts) is a
 * function, which the generator cannot name, so it would list no media type and drop the body
 * schema; here every route parses JSON, as the broker does.
 */
const parsingJson = (app: AnyElysia): AnyElysia => {
  const own = app as unknown as Introspectable
  const view: Introspectable = {
    getGlobalRoutes: () =>
      own.getGlobalRoutes().map((route) => ({
        ...route,
        hooks: { ...route.hooks, parse: [{ fn: 'json' }] },
      })),
    getGlobalDefinitions: () => own.getGlobalDefinitions(),
  }
  return view as unknown as AnyElysia
}

const COERCED_FORMATS = new Set(['integer', 'numeric', 'boolean'])
const isCoercedString = (s: unknown) =>
  (s as { type?: unknown })?.type === 'string' &&
  COERCED_FORMATS.has((s as { format?: string }).format ?? '')

/**
 * Elysia's coercing types (`t.Integer`, `t.BooleanString`) read as "a numeric string or a
 * number". A query value is a string on the wire whatever its schema, and a JSON value is the
 * number, so the document keeps the number alone.
 */
function withoutCoercion(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutCoercion)
  if (node === null || typeof node !== 'object') return node
  const { anyOf, ...rest } = node as { anyOf?: unknown[] }
  if (anyOf?.length === 2 && anyOf.some(isCoercedString))
    return withoutCoercion({ ...(anyOf.find((s) => !isCoercedString(s)) as object), ...rest })
  return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, withoutCoercion(v)]))
}

/** The OpenAPI document of the whole app `app` is part of (hidden routes left out). */
export function openApiDocument(app: AnyElysia) {
  const { paths, components } = toOpenAPISchema(
    parsingJson(app),
    undefined,
    undefined,
    undefined,
    OPENAPI_VERSION,
  )
  return {
    openapi: OPENAPI_VERSION,
    info,
    paths: withoutCoercion(paths) as typeof paths,
    components: { securitySchemes, schemas: components.schemas },
  }
}
