import { UpstreamTimeout } from '../../errors.js';
import { readJson, retryAfterMs, upstreamFetch } from '../../http/upstreamHttp.js';
import { loginProblems } from './loginProblems.js';

export interface ProviderCall {
  /** For messages: "Docker Hub API", "Azure Resource Manager". */
  provider: string;
  url: string;
  method: string;
  headers: Record<string, string>;
  json?: unknown;
  /** Statuses that count as done without a body (404 on delete). */
  tolerated?: number[];
  /** Whether sending again after a lost answer is harmless; creating something is not. */
  idempotent?: boolean;
  deadline: number;
}

export interface ProviderAnswer {
  status: number;
  headers: Headers;
  body: unknown;
}

/** The provider's own Retry-After, at least 1 s; 60 s when a 429 names none. */
function retryAfterSeconds(response: Response, fallback: number): number {
  const ms = retryAfterMs(response, Date.now());
  return ms === undefined ? fallback : Math.max(1, Math.ceil(ms / 1000));
}

/**
 * One call to a provider's management API under the operation's deadline. upstreamFetch already
 * retries 429 (and 5xx when idempotent) while its Retry-After fits; what is left is mapped here:
 * 429 → 503 with the provider's Retry-After, 5xx or unreachable → 503, timeout → 504, other 4xx → 502.
 */
export async function providerCall(call: ProviderCall): Promise<ProviderAnswer> {
  let response: Response;
  try {
    response = await upstreamFetch({
      url: call.url,
      method: call.method,
      headers: { Accept: 'application/json', ...call.headers },
      ...(call.json === undefined ? {} : { json: call.json }),
      ...(call.idempotent === undefined ? {} : { idempotent: call.idempotent }),
      deadline: call.deadline,
      registry: call.provider,
    });
  } catch (error) {
    if (error instanceof UpstreamTimeout) throw loginProblems.timeout(call.provider);
    throw loginProblems.unavailable(`${call.provider} could not be reached.`);
  }
  if (call.tolerated?.includes(response.status)) {
    await response.body?.cancel();
    return { status: response.status, headers: response.headers, body: undefined };
  }
  if (response.status === 429) {
    await response.body?.cancel();
    throw loginProblems.rateLimited(call.provider, retryAfterSeconds(response, 60));
  }
  if (response.status >= 500) {
    await response.body?.cancel();
    throw loginProblems.unavailable(`${call.provider} answered HTTP ${response.status}.`, retryAfterSeconds(response, 5));
  }
  if (response.status >= 400) {
    await response.body?.cancel();
    throw loginProblems.refused(call.provider, response.status);
  }
  if (response.status === 204 || call.method === 'DELETE') {
    await response.body?.cancel();
    return { status: response.status, headers: response.headers, body: undefined };
  }
  try {
    return { status: response.status, headers: response.headers, body: await readJson(response, call.provider) };
  } catch (error) {
    if (error instanceof UpstreamTimeout) throw loginProblems.timeout(call.provider);
    throw loginProblems.broken(`${call.provider}'s answer could not be read.`);
  }
}
