import { BrokerError, errors } from '../errors.js';
import { outboundFetch } from './outboundFetch.js';
import { readAtMost } from './readAtMost.js';
import { telemetry } from '../telemetry/instruments.js';

/**
 * HTTP to an upstream registry under one deadline: retries 429 and 5xx with exponential backoff,
 * honouring Retry-After while it fits in the deadline; a hang becomes 504, never a stuck request.
 */
const MAX_RETRIES = 2;
const BASE_BACKOFF_MS = 100;

export interface UpstreamCall {
  url: string;
  headers?: Record<string, string>;
  /** GET unless a body is given (then POST) or a method is named. */
  method?: string;
  /** A form body (OAuth2 endpoints). */
  form?: URLSearchParams;
  /** A JSON body (management APIs). */
  json?: unknown;
  /**
   * Whether repeating the request is harmless. GETs are; a POST that creates something is not: after
   * a lost answer it is not sent again (429, which promises nothing was done, is still retried).
   */
  idempotent?: boolean;
  deadline: number;
  /** For messages: which registry, never a URL with secrets. */
  registry: string;
}

export function retryAfterMs(response: Response, now: number): number | undefined {
  const header = response.headers.get('retry-after');
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function isTimeout(error: unknown): boolean {
  return error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
}

/** One span per call (the HTTP instrumentation leaves these calls out, see outboundFetch); its URL is not recorded. */
export function upstreamFetch(call: UpstreamCall): Promise<Response> {
  const method = call.method ?? (call.form === undefined && call.json === undefined ? 'GET' : 'POST');
  return telemetry.span(`upstream ${method}`, { registry: call.registry, 'http.request.method': method }, async (span) => {
    const response = await attempts(call, method);
    span.setAttribute('http.response.status_code', response.status);
    return response;
  });
}

async function attempts(call: UpstreamCall, method: string): Promise<Response> {
  const idempotent = call.idempotent ?? (method === 'GET' || method === 'DELETE');
  for (let attempt = 0; ; attempt++) {
    const remaining = call.deadline - Date.now();
    if (remaining <= 0) throw errors.upstreamTimeout(`${call.registry} did not answer in time.`);
    let response: Response;
    try {
      const body = call.form ?? (call.json === undefined ? undefined : JSON.stringify(call.json));
      response = await outboundFetch(call.url, {
        method,
        headers: { ...(call.json === undefined ? {} : { 'Content-Type': 'application/json' }), ...call.headers },
        ...(body === undefined ? {} : { body }),
        redirect: 'manual',
        signal: AbortSignal.timeout(remaining),
      });
    } catch (error) {
      telemetry.upstreamCall(call.registry, isTimeout(error) ? 'timeout' : 'error');
      if (isTimeout(error)) throw errors.upstreamTimeout(`${call.registry} did not answer in time.`);
      if (attempt < MAX_RETRIES && idempotent) {
        await sleep(BASE_BACKOFF_MS * 2 ** attempt);
        continue;
      }
      throw errors.upstreamBroken(`${call.registry} could not be reached.`);
    }
    telemetry.upstreamCall(call.registry, response.status, response.headers);
    const retryable = response.status === 429 || (idempotent && response.status >= 500);
    if (!retryable || attempt >= MAX_RETRIES) return response;
    const wait = retryAfterMs(response, Date.now()) ?? BASE_BACKOFF_MS * 2 ** attempt + Math.random() * BASE_BACKOFF_MS;
    if (Date.now() + wait >= call.deadline) return response;
    await response.body?.cancel();
    await sleep(wait);
  }
}

/** Token answers are a few KB; a body past this is not one, and is not read into memory. */
const MAX_BODY_BYTES = 256 * 1024;

async function readCapped(response: Response, registry: string): Promise<string> {
  const oversized = () => errors.upstreamBroken(`${registry} answered with an oversized body.`);
  if (Number(response.headers.get('content-length') ?? 0) > MAX_BODY_BYTES) {
    await response.body?.cancel();
    throw oversized();
  }
  return readAtMost(response.body, MAX_BODY_BYTES, oversized);
}

/**
 * The JSON answer of a token endpoint. 401/403 mean the registry refused what the broker presented;
 * any other failure status means it broke. Neither body is read: upstream bodies are never passed on.
 */
export async function tokenEndpointAnswer(
  response: Response,
  registry: string,
  explain: { refused: (status: number) => string; broken: (status: number) => string },
): Promise<unknown> {
  if (!response.ok) {
    await response.body?.cancel();
    const refused = response.status === 401 || response.status === 403;
    throw refused ? errors.upstreamRefused(explain.refused(response.status)) : errors.upstreamBroken(explain.broken(response.status));
  }
  return readJson(response, registry);
}

/** Reads a JSON body under the same deadline (a registry can hang after the headers too), at most 256 KiB. */
export async function readJson(response: Response, registry: string): Promise<unknown> {
  let text: string;
  try {
    text = await readCapped(response, registry);
  } catch (error) {
    if (isTimeout(error)) throw errors.upstreamTimeout(`${registry} did not answer in time.`);
    throw error instanceof BrokerError ? error : errors.upstreamBroken(`${registry}'s answer could not be read.`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw errors.upstreamBroken(`${registry} answered with a body that is not JSON.`);
  }
}
