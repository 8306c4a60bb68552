import type { z } from 'zod';
import type { Logger } from '../logger.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** Read by name only (`Headers.get`), so that a host need not build a `Headers` per request. */
export type RequestHeaders = Pick<Headers, 'get'>;

/** The framework-neutral request every handler sees; the Functions entry and the sandbox host both build it. */
export interface ApiRequest {
  method: string;
  url: URL;
  headers: RequestHeaders;
  params: Record<string, string>;
  requestId: string;
  clientIp: string;
  /** Reads the body, enforcing the size limit (throws a 413 problem). */
  text(): Promise<string>;
}

export interface ApiResponse {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

export interface HandlerContext<S> {
  services: S;
  log: Logger;
}

export type Handler<S> = (request: ApiRequest, context: HandlerContext<S>) => Promise<ApiResponse>;

export interface ResponseDoc {
  description: string;
  /** JSON body; problem+json answers need none, the OpenAPI document adds the problem schema. */
  schema?: z.ZodType;
  headers?: Record<string, string>;
}

/** One method on one path: its handler and the documentation the OpenAPI document is built from. */
export interface Operation<S> {
  summary: string;
  description?: string;
  /** `workload`: a managed-identity token; `admin`: a token with the admin app role; `anonymous`. */
  access: 'workload' | 'admin' | 'anonymous';
  requestBody?: z.ZodType;
  /** Query parameters (an object schema; each field is one parameter). */
  query?: z.ZodObject;
  headers?: Record<string, { description: string; required: boolean }>;
  responses: Record<number, ResponseDoc>;
  handler: Handler<S>;
}

/** One API path: its Functions route template (without the `api/` prefix) and an operation per method. */
export interface Route<S> {
  name: string;
  route: string;
  operations: Partial<Record<HttpMethod, Operation<S>>>;
}
