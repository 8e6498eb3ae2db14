// Swagger UI's files, imported as files so `bun build --compile` embeds them: /docs loads
// nothing from elsewhere, so it works offline.
import bundlePath from 'swagger-ui-dist/swagger-ui-bundle.js' with { type: 'file' }
import cssPath from 'swagger-ui-dist/swagger-ui.css' with { type: 'file' }

/** The files under /docs/, by name, with their content types. */
export const swaggerUiFiles = {
  'swagger-ui-bundle.js': { path: bundlePath, type: 'text/javascript; charset=utf-8' },
  'swagger-ui.css': { path: cssPath, type: 'text/css; charset=utf-8' },
}
