/**
 * The credentials the guards check, as the OpenAPI document names them. A route module states
 * the one its guard enforces in its `detail` (open routes state `open`); a test holds each
 * route to what it states.
 */
export const securitySchemes = {
  apiKey: {
    type: 'http',
    scheme: 'bearer',
    description:
      '`Authorization: Bearer <api key>`, one of CCBROKER_API_KEYS. Required only when keys ' +
      'are configured: a broker without keys serves external routes without one, and then only ' +
      'to loopback Hosts and those in CCBROKER_ALLOWED_HOSTS.',
  },
  workerToken: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description:
      'The worker JWT from POST /v1/sessions/{id}/bridge: valid for that session and its ' +
      'current worker epoch only.',
  },
} as const

export const auth = {
  apiKey: [{ apiKey: [] }],
  workerToken: [{ workerToken: [] }],
  open: [],
} satisfies Record<string, { [K in keyof typeof securitySchemes]?: string[] }[]>
