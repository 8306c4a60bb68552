import { randomBytes, randomUUID } from 'node:crypto';
import type { EntraIdStandIn } from './entraId.js';
import { sendJson, startLocalServer } from './localServer.js';
import type { RegistryTokenServer } from './registryTokenServer.js';

/**
 * Azure Resource Manager, for one ACR repository-scoped token: `generateCredentials` on its two
 * password slots. A regenerated slot's old value stops working at the registry token server at once.
 * Answers 200, or 202 + Location when `asynchronous` (optionally ending in failure).
 */
export const REGISTRY_RESOURCE_ID = '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/sandbox/providers/Microsoft.ContainerRegistry/registries/sandboxacr';

export interface ArmStandIn {
  url: string;
  tokenName: string;
  registryResourceId: string;
  generate(slot: string): string;
  slots(): Record<string, string>;
  setAsynchronous(mode: 'off' | 'succeed' | 'fail'): void;
  failNext(count: number, status: number): void;
  close(): Promise<void>;
}

export async function startArm(entra: EntraIdStandIn, tokens: RegistryTokenServer, tokenName = 'broker-token'): Promise<ArmStandIn> {
  const slots = new Map<string, string>();
  const operations = new Map<string, unknown>();
  let asynchronous: 'off' | 'succeed' | 'fail' = 'off';
  let failures = { remaining: 0, status: 500 };
  let url = '';

  const generate = (slot: string) => {
    const previous = slots.get(slot);
    if (previous) tokens.removePassword(tokenName, previous);
    const value = randomBytes(24).toString('base64');
    slots.set(slot, value);
    tokens.addAccount(tokenName, value);
    return value;
  };
  const result = (slot: string, value: string, expiry: string) => ({
    username: tokenName,
    passwords: [{ name: slot, value, creationTime: new Date().toISOString(), expiry }],
  });

  const server = await startLocalServer(async (request, response, body) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    try {
      await entra.verify(request.headers.authorization?.replace(/^Bearer /, '') ?? '', url);
    } catch {
      return sendJson(response, 401, { error: { code: 'InvalidAuthenticationToken', message: 'The access token is invalid.' } });
    }
    if (failures.remaining > 0) {
      failures.remaining -= 1;
      return sendJson(response, failures.status, { error: { code: 'InternalServerError', message: 'injected failure' } });
    }
    if (request.method === 'GET' && path.startsWith('/operations/')) {
      const outcome = operations.get(path.slice('/operations/'.length));
      return outcome ? sendJson(response, 200, outcome) : sendJson(response, 404, { error: { code: 'NotFound' } });
    }
    if (request.method !== 'POST' || path !== `${REGISTRY_RESOURCE_ID}/generateCredentials`) {
      return sendJson(response, 404, { error: { code: 'ResourceNotFound' } });
    }
    const input = JSON.parse(body || '{}') as { tokenId?: string; name?: string; expiry?: string };
    if (input.tokenId !== `${REGISTRY_RESOURCE_ID}/tokens/${tokenName}` || (input.name !== 'password1' && input.name !== 'password2')) {
      return sendJson(response, 400, { error: { code: 'InvalidRequest', message: 'unknown token or password name' } });
    }
    if (asynchronous === 'off') return sendJson(response, 200, result(input.name, generate(input.name), input.expiry ?? ''));
    const id = randomUUID();
    operations.set(id, asynchronous === 'fail' ? { status: 'Failed', error: { code: 'InternalError', message: 'operation failed' } } : result(input.name, generate(input.name), input.expiry ?? ''));
    response.writeHead(202, { Location: `${url}/operations/${id}`, 'Retry-After': '0' });
    response.end();
  });
  url = server.url;

  return {
    url,
    tokenName,
    registryResourceId: REGISTRY_RESOURCE_ID,
    generate,
    slots: () => Object.fromEntries(slots),
    setAsynchronous: (mode) => {
      asynchronous = mode;
    },
    failNext: (count, status) => {
      failures = { remaining: count, status };
    },
    close: () => server.close(),
  };
}
