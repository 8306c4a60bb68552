import type { Logger } from '../logger.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** The framework-neutral request every handler sees; the Functions entry and the sandbox host both build it. */
export interface ApiRequest {
  method: string;
  url: URL;
  headers: Headers;
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

/** One API path: its Functions route template (without the `api/` prefix) and a handler per method. */
export interface Route<S> {
  name: string;
  route: string;
  handlers: Partial<Record<HttpMethod, Handler<S>>>;
}
