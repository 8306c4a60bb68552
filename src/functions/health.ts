import * as z from 'zod';
import { SETTING_NAMES } from '../config.js';
import { json, problemResponse } from '../http/dispatch.js';
import { Unavailable } from '../errors.js';
import type { Handler, Route } from '../http/types.js';
import type { Services } from '../services.js';

/** GET /v1/health: anonymous. Settings were validated at start-up, so this reports the dependencies. */
const health: Handler<Services> = async (request, { services }) => {
  const report = await services.health.report();
  const down = Object.entries(report).filter(([, state]) => state === 'down').map(([name]) => name);
  if (down.length === 0) return json(200, { status: 'ok', checks: report });
  const problem = new Unavailable('dependency-unavailable', 'A dependency is unavailable', `Down: ${down.join(', ')}.`, {
    retryAfterSeconds: 10,
    errors: down.map((name) => ({ path: name, message: 'unreachable' })),
  });
  return problemResponse(problem, request.requestId);
};

const state = z.enum(['ok', 'down']);
export const healthSchema = z.object({
  status: z.literal('ok'),
  checks: z.object({ tableStorage: state, keyVault: state, identityProvider: state }),
});

const healthOperation = {
  summary: 'Report whether the broker can reach its dependencies, or which settings are invalid',
  access: 'anonymous',
  responses: {
    200: { description: 'Every dependency answered', schema: healthSchema },
    503: { description: 'A dependency is down, or a setting is invalid; the problem names it', headers: { 'Retry-After': 'seconds' } },
  },
} as const;

export const healthRoute: Route<Services> = {
  name: 'health',
  route: 'v1/health',
  operations: { GET: { ...healthOperation, handler: health } },
};

/** The settings a start-up failure names, in the order config.ts reports them; never their values. */
export function invalidSettingNames(problems: string[]): string[] {
  const named = problems.map((problem) => SETTING_NAMES.find((name) => problem.startsWith(`${name}:`) || problem.startsWith(`${name} `)) ?? 'settings');
  return [...new Set(named)];
}

/**
 * GET /v1/health while the settings are invalid: the only route then registered, so that a bad
 * setting shows as a 503 naming it instead of a Function App with no functions (404 everywhere).
 * It names the settings, never their values, and has nothing else to report.
 */
export function invalidSettingsHealthRoute(settings: string[]): Route<null> {
  const health: Handler<null> = async (request) => {
    const problem = new Unavailable('settings-invalid', 'The broker is not configured', `Invalid settings: ${settings.join(', ')}. The start-up log names each problem.`, {
      retryAfterSeconds: 60,
      errors: settings.map((name) => ({ path: name, message: 'invalid' })),
    });
    return problemResponse(problem, request.requestId);
  };
  return { name: healthRoute.name, route: healthRoute.route, operations: { GET: { ...healthOperation, handler: health } } };
}
