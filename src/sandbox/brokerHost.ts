import { createServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ulid } from '../ids.js';
import { MAX_BODY_BYTES, dispatch, problemResponse } from '../http/dispatch.js';
import { errors } from '../errors.js';
import { problemBody, statusOf } from '../http/problem.js';
import { routeMatcher } from '../http/routeTemplate.js';
import type { ApiRequest, ApiResponse, RequestHeaders, Route } from '../http/types.js';
import type { Logger } from '../logger.js';

/**
 * Serves a route table over plain node:http with the same handlers the Functions entry registers,
 * under the same `api/` prefix. For the sandbox and tests; never deployed.
 */
const PREFIX = '/api/';
/** Room for every header a client sends with a bearer token several times the largest Entra issues. */
const MAX_HEADER_BYTES = 64 * 1024;

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

/** A request target that `new URL` would leave as its path unchanged: no query, dots, escapes, backslashes or leading `//`. */
const PLAIN_PATH = /^\/(?!\/)[A-Za-z0-9_~/-]*$/;

/** Headers read by name from node's own object, answered as a fetch `Headers` would (repeated values joined). */
class NodeHeaders implements RequestHeaders {
  constructor(private readonly message: IncomingMessage) {}

  get(name: string): string | null {
    const value = this.message.headers[name.toLowerCase()];
    if (value === undefined) return null;
    return typeof value === 'string' ? value : value.join(', ');
  }
}

/**
 * One node:http request as handlers see it. A class, so that what a token request never reads
 * costs nothing: no `Headers` is built, and the URL is parsed only when a handler asks for it (the
 * admin queries).
 */
class HostRequest implements ApiRequest {
  readonly method: string;
  readonly requestId = ulid();
  readonly clientIp: string;
  readonly headers: RequestHeaders;
  params: Record<string, string> = {};
  body: string | undefined;
  /** The body was over the limit (declared or read): the connection closes after the answer. */
  tooLarge = false;
  private parsedUrl: URL | undefined;

  constructor(
    private readonly message: IncomingMessage,
    private readonly host: string,
  ) {
    this.method = message.method ?? 'GET';
    this.clientIp = message.socket.remoteAddress ?? 'unknown';
    this.headers = new NodeHeaders(message);
  }

  get url(): URL {
    return (this.parsedUrl ??= new URL(this.message.url ?? '/', `http://${this.message.headers.host ?? this.host}`));
  }

  get pathname(): string {
    const target = this.message.url ?? '/';
    return PLAIN_PATH.test(target) ? target : this.url.pathname;
  }

  async text(): Promise<string> {
    if (Number(this.message.headers['content-length'] ?? 0) > MAX_BODY_BYTES) {
      this.tooLarge = true;
      throw errors.payloadTooLarge(MAX_BODY_BYTES);
    }
    try {
      this.body ??= await readBody(this.message);
    } catch (error) {
      this.tooLarge = true;
      throw error;
    }
    return this.body;
  }
}

export interface BrokerHost {
  server: Server;
  url: string;
  close(): Promise<void>;
}

export async function startBrokerHost<S>(routes: Route<S>[], services: S, log: Logger, port = 0, host = '127.0.0.1'): Promise<BrokerHost> {
  // In order, first match wins, each template split once.
  const matchers = routes.map((route) => ({ route, match: routeMatcher(route.route) }));
  // Headers may be larger than Node's 16 KiB default, so that an oversized token is the broker's own
  // 401 (counted like any failed authentication), as behind the Functions host.
  const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, (message, reply) => {
    void (async () => {
      const request = new HostRequest(message, host);
      const { pathname, requestId } = request;
      let response: ApiResponse | undefined;
      if (pathname.startsWith(PREFIX)) {
        const path = pathname.slice(PREFIX.length);
        for (const { route, match } of matchers) {
          const params = match(path);
          if (!params) continue;
          request.params = params;
          response = await dispatch(route, request, { services, log });
          break;
        }
      }
      response ??= problemResponse(errors.notFound('no-such-route', `No route ${pathname}.`), requestId);
      const text = response.body === undefined ? undefined : JSON.stringify(response.body);
      const headers: Record<string, string> = { ...response.headers, 'x-request-id': requestId };
      // With its length known the answer goes out in one write, not in chunks.
      if (text !== undefined) headers['Content-Length'] = String(Buffer.byteLength(text));
      // An unread or oversized body must not be left in the connection for the next request.
      if (request.tooLarge || (request.body === undefined && message.readableLength > 0)) headers.Connection = 'close';
      reply.writeHead(response.status, headers);
      reply.end(text);
      if (headers.Connection !== 'close') message.resume();
    })();
  });
  // What Node refuses before there is a request (headers past even that, a malformed request line)
  // still gets a problem+json answer, not a bare status line.
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy();
    const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
    const problem = tooLarge ? errors.headersTooLarge(MAX_HEADER_BYTES) : errors.badRequest('The request is not valid HTTP/1.1.');
    const text = JSON.stringify(problemBody(problem, ulid()));
    const status = statusOf(problem);
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/problem+json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
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
