import { ManagedIdentityCredential, type TokenCredential } from '@azure/identity';

/** What the broker answers on POST /api/v1/tokens (DESIGN.md §4). */
export interface IssuedCredential {
  registry: string;
  token: string;
  expiresAt: string;
  expiresIn: number;
  scopes: string[];
  issuanceId: string;
  dockerConfig: { auths: Record<string, { registrytoken: string }> };
}

/** A failure the CLI prints as one line; exit code 1, or 2 for wrong usage. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** Options every command takes: where the broker is and which audience its tokens must have. */
export const BROKER_OPTIONS = {
  broker: { type: 'string' },
  audience: { type: 'string' },
  json: { type: 'boolean' },
} as const;

export function brokerTarget(values: { broker?: unknown; audience?: unknown }, usage: string): { broker: string; audience: string } {
  const broker = (values.broker as string | undefined) ?? process.env.REGISTRY_BROKER_URL;
  const audience = (values.audience as string | undefined) ?? process.env.REGISTRY_BROKER_AUDIENCE;
  if (!broker) throw new CliError(`missing --broker (or REGISTRY_BROKER_URL)\n\n${usage}`, 2);
  if (!audience) throw new CliError(`missing --audience (or REGISTRY_BROKER_AUDIENCE)\n\n${usage}`, 2);
  return { broker, audience };
}

export function managedIdentity(clientId: string | undefined): TokenCredential {
  return clientId ? new ManagedIdentityCredential({ clientId }) : new ManagedIdentityCredential();
}

/** The caller's own token for the broker: `<audience>/.default`, from IMDS or the platform's MSI endpoint. */
export async function callerToken(credential: TokenCredential, audience: string): Promise<string> {
  try {
    const token = await credential.getToken(`${audience.replace(/\/+$/, '')}/.default`);
    if (!token) throw new Error('no token');
    return token.token;
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new CliError(`no managed-identity token for ${audience}: ${reason} (run where a managed identity is available; --client-id selects a user-assigned one)`);
  }
}

export interface BrokerAnswer<T> {
  body: T;
  headers: Headers;
}

export async function callBroker<T>(broker: string, path: string, bearer: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<T> {
  return (await requestBroker<T>(broker, path, bearer, init)).body;
}

export async function requestBroker<T>(
  broker: string,
  path: string,
  bearer: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<BrokerAnswer<T>> {
  const url = `${broker.replace(/\/+$/, '')}${path}`;
  let response: Response;
  try {
    response = await fetch(url, {
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
      const problem = JSON.parse(text) as { title?: string; detail?: string };
      detail = [problem.title, problem.detail].filter(Boolean).join(': ');
    } catch {
      // not problem+json: the start of the body says enough
    }
    throw new CliError(`broker answered ${response.status}: ${detail}`);
  }
  return { body: (text ? JSON.parse(text) : undefined) as T, headers: response.headers };
}
