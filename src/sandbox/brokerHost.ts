import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ulid } from '../ids.js';
import { MAX_BODY_BYTES, dispatch, problemResponse } from '../http/dispatch.js';
import { errors } from '../errors.js';
import { matchRoute } from '../http/routeTemplate.js';
import type { ApiRequest, ApiResponse, Route } from '../http/types.js';
import type { Logger } from '../logger.js';

/**
 * Serves a route table over plain node:http with the same handlers the Functions entry registers,
 * under the same `api/` prefix. For the sandbox and tests; never deployed.
 */
const PREFIX = '/api/';

function readBody(message: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    message.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        message.pause();
        reject(errors.payloadTooLarge(MAX_BODY_BYTES));
        return;
      }
      chunks.push(chunk);
    });
    message.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    message.on('error', reject);
  });
}

function toHeaders(message: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(message.headers)) {
    if (typeof value === 'string') headers.set(name, value);
    else if (Array.isArray(value)) for (const item of value) headers.append(name, item);
  }
  return headers;
}

export interface BrokerHost {
  server: Server;
  url: string;
  close(): Promise<void>;
}

export async function startBrokerHost<S>(routes: Route<S>[], services: S, log: Logger, port = 0, host = '127.0.0.1'): Promise<BrokerHost> {
  const server = createServer((message, reply) => {
    void (async () => {
      const url = new URL(message.url ?? '/', `http://${message.headers.host ?? host}`);
      const requestId = ulid();
      let body: string | undefined;
      let tooLarge = false;
      const request: ApiRequest = {
        method: message.method ?? 'GET',
        url,
        headers: toHeaders(message),
        params: {},
        requestId,
        clientIp: message.socket.remoteAddress ?? 'unknown',
        text: async () => {
          if (Number(message.headers['content-length'] ?? 0) > MAX_BODY_BYTES) {
            tooLarge = true;
            throw errors.payloadTooLarge(MAX_BODY_BYTES);
          }
          try {
            body ??= await readBody(message);
          } catch (error) {
            tooLarge = true;
            throw error;
          }
          return body;
        },
      };
      let response: ApiResponse;
      const path = url.pathname.startsWith(PREFIX) ? url.pathname.slice(PREFIX.length) : undefined;
      const match = path === undefined ? undefined : routes.map((route) => ({ route, params: matchRoute(route.route, path) })).find((m) => m.params);
      if (!match?.params) {
        response = problemResponse(errors.notFound('no-such-route', `No route ${url.pathname}.`), requestId);
      } else {
        request.params = match.params;
        response = await dispatch(match.route, request, { services, log });
      }
      const headers: Record<string, string> = { ...response.headers, 'x-request-id': requestId };
      // An unread or oversized body must not be left in the connection for the next request.
      if (tooLarge || (body === undefined && message.readableLength > 0)) headers.Connection = 'close';
      reply.writeHead(response.status, headers);
      reply.end(response.body === undefined ? undefined : JSON.stringify(response.body));
      if (headers.Connection !== 'close') message.resume();
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    server,
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
