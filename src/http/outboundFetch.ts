import { createRequire } from 'node:module';
import type * as Http from 'node:http';
import type * as Https from 'node:https';
import { Readable } from 'node:stream';

/**
 * The broker's outbound calls (Entra metadata and key sets, registries' token services, Docker Hub,
 * ARM; the CLI's calls to the broker), with fetch's contract for what they use: a `Response`, a
 * request `signal` whose reason is what a call that times out rejects with (before the answer or
 * while its body is read), `redirect` 'manual' or 'error' (never followed). Sent with node:http
 * rather than fetch: a cold worker's first fetch compiles undici's client (its HTTP parser is
 * WebAssembly), ~10 ms of CPU more than a first http.request, and every later call costs ~2 ms more
 * (issue 14). Idle connections are kept for 4 s, as fetch keeps them.
 */
export interface OutboundInit {
  method?: string;
  headers?: Record<string, string> | Headers;
  body?: string | URLSearchParams;
  redirect?: 'manual' | 'error';
  signal?: AbortSignal;
}

// require(), not import: the module object require() returns is the one the HTTP instrumentation
// patches, as it does for the SDKs' calls, so its ignore hook (sentByOutboundFetch) decides these too.
// (Loading undici's module is not saved this way: the first Response loads it anyway.)
const require = createRequire(import.meta.url);
const http = require('node:http') as typeof Http;
const https = require('node:https') as typeof Https;

const IDLE_MS = 4_000;
const agents = {
  'http:': new http.Agent({ keepAlive: true, timeout: IDLE_MS }),
  'https:': new https.Agent({ keepAlive: true, timeout: IDLE_MS }),
};
/**
 * For the HTTP instrumentation (telemetry on): these calls have spans of their own that record no
 * URL (a token service's query names the stored account), so they get no HTTP client span beside them.
 */
export function sentByOutboundFetch(options: { agent?: unknown }): boolean {
  return options.agent === agents['http:'] || options.agent === agents['https:'];
}

/** Statuses whose Response may not have a body. */
const NULL_BODY = new Set([101, 204, 205, 304]);

function headersOf(init: OutboundInit, body: string | undefined): Record<string, string> {
  const headers: Record<string, string> = { accept: '*/*', 'user-agent': 'registry-broker' };
  const given = init.headers instanceof Headers ? init.headers.entries() : Object.entries(init.headers ?? {});
  for (const [name, value] of given) headers[name.toLowerCase()] = value;
  if (init.body instanceof URLSearchParams) headers['content-type'] ??= 'application/x-www-form-urlencoded;charset=UTF-8';
  if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
  return headers;
}

function responseOf(answer: Http.IncomingMessage): Response {
  const headers = new Headers();
  for (let at = 0; at < answer.rawHeaders.length; at += 2) headers.append(answer.rawHeaders[at]!, answer.rawHeaders[at + 1]!);
  const status = answer.statusCode ?? 0;
  const body = NULL_BODY.has(status) ? null : (Readable.toWeb(answer) as ReadableStream<Uint8Array>);
  if (body === null) answer.resume();
  return new Response(body, { status, statusText: answer.statusMessage ?? '', headers });
}

export function outboundFetch(url: string | URL, init: OutboundInit = {}): Promise<Response> {
  const target = new URL(url);
  if (init.signal?.aborted) return Promise.reject(init.signal.reason);
  if (target.protocol !== 'https:' && target.protocol !== 'http:') return Promise.reject(new TypeError(`${target.protocol} is not an HTTP URL`));
  const method = init.method ?? 'GET';
  return send(target, method, init, init.body === undefined ? undefined : String(init.body), method === 'GET' || method === 'HEAD');
}

/**
 * `again`: whether a request that found its kept-alive connection closed under it (reset before any
 * answer) is sent once more on a new one, as fetch does; only for requests that are safe to repeat.
 */
function send(target: URL, method: string, init: OutboundInit, body: string | undefined, again: boolean): Promise<Response> {
  const { signal } = init;
  const client = target.protocol === 'https:' ? https : http;
  return new Promise<Response>((resolve, reject) => {
    const request = client.request(target, { method, headers: headersOf(init, body), agent: agents[target.protocol as 'http:' | 'https:'] });
    let answer: Http.IncomingMessage | undefined;
    // Before the answer the request fails with the reason; after it, the body being read does.
    const abort = () => (answer ?? request).destroy(signal!.reason);
    signal?.addEventListener('abort', abort, { once: true });
    const settled = () => signal?.removeEventListener('abort', abort);
    // on, not once: a socket can report more than one failure, and a second unheard one would end the process.
    request.on('error', (error: NodeJS.ErrnoException) => {
      settled();
      if (signal?.aborted) return reject(signal.reason);
      if (again && !answer && request.reusedSocket && error.code === 'ECONNRESET') return resolve(send(target, method, init, body, false));
      reject(new TypeError('fetch failed', { cause: error }));
    });
    request.once('response', (received) => {
      answer = received;
      try {
        const status = received.statusCode ?? 0;
        if (init.redirect === 'error' && status >= 300 && status < 400) throw new TypeError('fetch failed: redirect refused');
        received.once('close', settled);
        // The body stream reports its own failure to whoever reads it; unread, it must not end the process.
        received.on('error', () => undefined);
        resolve(responseOf(received));
      } catch (error) {
        settled();
        received.destroy();
        reject(error);
      }
    });
    request.end(body);
  });
}
