import { ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { outboundFetch } from '../http/outboundFetch.js';

/** A failure the CLI prints as one line; exit code 1, or 2 for wrong usage. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** Where the broker is and which audience its tokens must have: flags first, then the environment. */
export function brokerTarget(values: { broker?: unknown; audience?: unknown }): { broker: string; audience: string } {
  const broker = (values.broker as string | undefined) ?? process.env.REGISTRY_BROKER_URL;
  const audience = (values.audience as string | undefined) ?? process.env.REGISTRY_BROKER_AUDIENCE;
  if (!broker) throw new CliError('missing --broker (or REGISTRY_BROKER_URL)', 2);
  if (!audience) throw new CliError('missing --audience (or REGISTRY_BROKER_AUDIENCE)', 2);
  return { broker, audience };
}

/**
 * The broker answered with an error status; callers that can explain a status (409, 412) look at it.
 * A 400 is wrong usage (a malformed scope, an unknown action), so it exits 2 like the CLI's own.
 */
export class BrokerRefused extends CliError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message, status === 400 ? 2 : 1);
  }
}

export function managedIdentity(clientId: string | undefined): TokenCredential {
  return clientId ? new ManagedIdentityCredential({ clientId }) : new ManagedIdentityCredential();
}

/** How a workload command selects a user-assigned identity, for the hint when no token comes. */
const CLIENT_ID_FLAG = '--client-id selects a user-assigned one';

/**
 * The caller's own token for the broker: `<audience>/.default`, from IMDS or the platform's MSI
 * endpoint. `selecting` says how this command picks the identity (commands differ: a flag, a setting).
 */
export async function callerToken(credential: TokenCredential, audience: string, selecting = CLIENT_ID_FLAG): Promise<string> {
  try {
    const token = await credential.getToken(`${audience.replace(/\/+$/, '')}/.default`);
    if (!token) throw new Error('no token');
    return token.token;
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new CliError(`no managed-identity token for ${audience}: ${reason} (run where a managed identity is available; ${selecting})`);
  }
}

export interface CallInit {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface BrokerAnswer<T> {
  body: T;
  headers: Headers;
}

export async function callBroker<T>(broker: string, path: string, bearer: string, init: CallInit = {}): Promise<T> {
  return (await requestBroker<T>(broker, path, bearer, init)).body;
}

export async function requestBroker<T>(
  broker: string,
  path: string,
  bearer: string,
  init: CallInit = {},
): Promise<BrokerAnswer<T>> {
  const url = `${broker.replace(/\/+$/, '')}${path}`;
  let response: Response;
  try {
    response = await outboundFetch(url, {
      method: init.method ?? 'GET',
      headers: { Authorization: `Bearer ${bearer}`, 'Content-Type': 'application/json', ...init.headers },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    throw new CliError(`cannot reach the broker at ${broker}: ${cause}`);
  }
  const text = await response.text();
  if (!response.ok) {
    let detail = text.slice(0, 300);
    try {
      const problem = JSON.parse(text) as { title?: string; detail?: string; requestId?: string };
      // The requestId lets an operator replay the decision: `registry-broker admin explain --request-id`.
      detail = [problem.title, problem.detail].filter(Boolean).join(': ') + (problem.requestId ? ` (requestId ${problem.requestId})` : '');
    } catch {
      // not problem+json: the start of the body says enough
    }
    // The API lives under /api: a base URL without it reaches the host, which knows no such route.
    const hint = response.status === 404 && !/\/api\/*$/.test(new URL(broker).pathname) ? ` (is ${broker} the API's base URL? It ends in /api)` : '';
    throw new BrokerRefused(response.status, `broker answered ${response.status}: ${detail}${hint}`);
  }
  return { body: (text ? JSON.parse(text) : undefined) as T, headers: response.headers };
}

/** One caller's authenticated line to the broker. */
export interface BrokerSession {
  broker: string;
  call<T>(path: string, init?: CallInit): Promise<T>;
  request<T>(path: string, init?: CallInit): Promise<BrokerAnswer<T>>;
}

export function brokerSession(broker: string, bearer: string): BrokerSession {
  return {
    broker,
    call: (path, init) => callBroker(broker, path, bearer, init),
    request: (path, init) => requestBroker(broker, path, bearer, init),
  };
}
