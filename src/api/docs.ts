import { swagger } from '@elysiajs/swagger'

export const docs = () =>
  swagger({
    path: '/docs',
    documentation: {
      info: {
        title: 'cc-broker',
        version: '0.1.0',
        description:
          'Runs Claude Code as a headless worker per turn, with a durable event log. ' +
          'External routes take `Authorization: Bearer <api key>` when keys are configured; ' +
          'worker routes take the worker JWT from POST /v1/sessions/{id}/bridge.',
      },
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer' },
          workerToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
        },
      },
    },
  })
