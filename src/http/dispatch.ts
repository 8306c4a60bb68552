import { errorSummary } from '../logger.js';
import { asBrokerError, BrokerError, errors } from '../errors.js';
import { problemBody, problemHeaders, statusOf } from './problem.js';
import type { ApiRequest, ApiResponse, HandlerContext, HttpMethod, Route } from './types.js';

/** Every request body the API accepts is at most this large (DESIGN.md §4). */
export const MAX_BODY_BYTES = 16 * 1024;

const BASE_HEADERS = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' };

export function json(status: number, body: unknown, headers: Record<string, string> = {}): ApiResponse {
  return { status, body, headers: { 'Content-Type': 'application/json; charset=utf-8', ...headers } };
}

export function problemResponse(problem: BrokerError, requestId: string): ApiResponse {
  return {
    status: statusOf(problem),
    body: problemBody(problem, requestId),
    headers: { 'Content-Type': 'application/problem+json; charset=utf-8', ...problemHeaders(problem) },
  };
}

export function allowedMethods<S>(route: Route<S>): HttpMethod[] {
  return Object.keys(route.operations) as HttpMethod[];
}

/** Runs one route's handler: any escaped error becomes problem+json, an unexpected one a logged 500. */
export async function dispatch<S>(route: Route<S>, request: ApiRequest, context: HandlerContext<S>): Promise<ApiResponse> {
  let response: ApiResponse;
  const handler = route.operations[request.method.toUpperCase() as HttpMethod]?.handler;
  try {
    if (!handler) throw errors.methodNotAllowed(allowedMethods(route));
    response = await handler(request, context);
  } catch (error) {
    if (!(error instanceof BrokerError)) {
      context.log.error('unhandled error', { route: route.name, requestId: request.requestId, error: errorSummary(error) });
    }
    response = problemResponse(asBrokerError(error), request.requestId);
  }
  return { ...response, headers: { ...BASE_HEADERS, ...response.headers } };
}
