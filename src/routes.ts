import { adminAuditRoute } from './functions/adminAudit.js';
import { adminBlockRoute, adminBlocksRoute } from './functions/adminBlocks.js';
import { adminCredentialsRoute, adminRotateRoute } from './functions/adminCredentials.js';
import { adminExplainRoute } from './functions/adminExplain.js';
import { adminIssuancesRoute } from './functions/adminIssuances.js';
import { adminGrantRoute, adminGrantsRoute } from './functions/adminGrants.js';
import { healthRoute } from './functions/health.js';
import { openApiRoute } from './functions/openapi.js';
import { adminLoginCredentialsRoute } from './functions/loginCredentials.js';
import { tokensRoute } from './functions/tokens.js';
import type { Route } from './http/types.js';
import type { Services } from './services.js';

/** The one route table: src/index.ts registers it with Azure Functions, the sandbox host serves it. */
export const routes: Route<Services>[] = [
  tokensRoute,
  healthRoute,
  adminGrantsRoute,
  adminGrantRoute,
  adminBlocksRoute,
  adminBlockRoute,
  adminIssuancesRoute,
  adminAuditRoute,
  adminCredentialsRoute,
  adminRotateRoute,
  adminExplainRoute,
  adminLoginCredentialsRoute,
];
routes.push(openApiRoute(() => routes));
