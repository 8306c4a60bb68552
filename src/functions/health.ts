import { z } from 'zod';
import { json, problemResponse } from '../http/dispatch.js';
import { Problem } from '../http/problem.js';
import type { Handler, Route } from '../http/types.js';
import type { Services } from '../services.js';

/** GET /v1/health: anonymous. Settings were validated at start-up, so this reports the dependencies. */
const health: Handler<Services> = async (request, { services }) => {
  const report = await services.health.report();
  const down = Object.entries(report).filter(([, state]) => state === 'down').map(([name]) => name);
  if (down.length === 0) return json(200, { status: 'ok', checks: report });
  const problem = new Problem(503, 'dependency-unavailable', 'A dependency is unavailable', `Down: ${down.join(', ')}.`, {
    headers: { 'Retry-After': '10' },
    errors: down.map((name) => ({ path: name, message: 'unreachable' })),
  });
  return problemResponse(problem, request.requestId);
};

const state = z.enum(['ok', 'down']);
export const healthSchema = z.object({
  status: z.literal('ok'),
  checks: z.object({ tableStorage: state, keyVault: state, identityProvider: state }),
});

export const healthRoute: Route<Services> = {
  name: 'health',
  route: 'v1/health',
  operations: {
    GET: {
      summary: 'Report whether the broker can reach its dependencies',
      access: 'anonymous',
      responses: {
        200: { description: 'Every dependency answered', schema: healthSchema },
        503: { description: 'A dependency is down; the problem names it', headers: { 'Retry-After': 'seconds' } },
      },
      handler: health,
    },
  },
};
