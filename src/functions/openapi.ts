import { json } from '../http/dispatch.js';
import { openApiDocument } from '../http/openapi.js';
import type { Route } from '../http/types.js';
import type { Services } from '../services.js';

/** GET /v1/openapi.json: anonymous; the document describes every route, this one included. */
export function openApiRoute(allRoutes: () => Route<Services>[]): Route<Services> {
  let document: Record<string, unknown> | undefined;
  return {
    name: 'openapi',
    route: 'v1/openapi.json',
    operations: {
      GET: {
        summary: 'This API as an OpenAPI 3.1 document',
        access: 'anonymous',
        responses: { 200: { description: 'The OpenAPI document' } },
        handler: async () => {
          document ??= openApiDocument(allRoutes());
          return json(200, document);
        },
      },
    },
  };
}
