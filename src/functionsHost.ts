import type * as AzureFunctions from '@azure/functions';
import type { HttpRequest, HttpResponseInit, InvocationContext, Timer } from '@azure/functions';
import { createRequire } from 'node:module';
import { MAX_BODY_BYTES, allowedMethods, dispatch } from './http/dispatch.js';
import { errors } from './errors.js';
import { readAtMost } from './http/readAtMost.js';
import type { ApiRequest, Route } from './http/types.js';
import type { Logger } from './logger.js';
import type { RequestActivity } from './quietMoment.js';

/**
 * Loaded with require(): an ES module importing this CommonJS package makes Node first scan its
 * source for export names, about 25 ms of every cold start (issue 14). Same instance either way.
 */
const azureFunctions = createRequire(import.meta.url)('@azure/functions') as typeof AzureFunctions;

/** Azure Functions ↔ the framework-neutral handlers. The only module besides index.ts that knows Functions. */
function contextLogger(context: InvocationContext): Logger {
  const line = (message: string, fields?: Record<string, unknown>) => JSON.stringify({ message, ...fields });
  return {
    info: (message, fields) => context.log(line(message, fields)),
    warn: (message, fields) => context.warn(line(message, fields)),
    error: (message, fields) => context.error(line(message, fields)),
  };
}

/**
 * The client as App Service's front end saw it: the last X-Forwarded-For entry (the one it appended;
 * earlier entries come from the client and prove nothing), as `ip:port` for IPv4.
 */
function clientIp(request: HttpRequest): string {
  const forwarded = request.headers.get('x-forwarded-for')?.split(',').at(-1)?.trim();
  if (!forwarded) return 'unknown';
  const ipv4WithPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(forwarded);
  return (ipv4WithPort?.[1] ?? forwarded).slice(0, 64);
}

export function toApiRequest(request: HttpRequest, context: InvocationContext): ApiRequest {
  return {
    method: request.method,
    url: new URL(request.url),
    headers: request.headers,
    params: { ...request.params },
    requestId: context.invocationId,
    clientIp: clientIp(request),
    text: async () => {
      if (Number(request.headers.get('content-length') ?? 0) > MAX_BODY_BYTES) throw errors.payloadTooLarge(MAX_BODY_BYTES);
      return readAtMost(request.body, MAX_BODY_BYTES, () => errors.payloadTooLarge(MAX_BODY_BYTES));
    },
  };
}

export function functionsHandler<S>(route: Route<S>, services: () => S, activity?: RequestActivity) {
  return async (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> => {
    activity?.begin();
    try {
      const response = await dispatch(route, toApiRequest(request, context), { services: services(), log: contextLogger(context) });
      return {
        status: response.status,
        headers: response.headers,
        ...(response.body === undefined ? {} : { body: JSON.stringify(response.body) }),
      };
    } finally {
      activity?.end();
    }
  };
}

export interface TimerJob<S> {
  name: string;
  schedule: string;
  run(services: S, log: Logger): Promise<void>;
}

export function registerTimer<S>(job: TimerJob<S>, services: () => S): void {
  azureFunctions.app.timer(job.name, {
    schedule: job.schedule,
    // Schedule monitoring: a run missed while no instance was up happens as soon as one is.
    useMonitor: true,
    handler: (_timer: Timer, context: InvocationContext) => job.run(services(), contextLogger(context)),
  });
}

/** `activity`, when given, hears each invocation begin and end (work waiting for a quiet moment). */
export function registerRoutes<S>(routes: Route<S>[], services: () => S, activity?: RequestActivity): void {
  for (const route of routes) {
    azureFunctions.app.http(route.name, {
      route: route.route,
      methods: allowedMethods(route),
      authLevel: 'anonymous',
      handler: functionsHandler(route, services, activity),
    });
  }
}

/** Runs `hook` once the worker has loaded the entry (tests that load it run none). */
export function registerAppStart(hook: () => void): void {
  azureFunctions.app.hook.appStart(hook);
}
