import { randomBytes, randomUUID } from 'node:crypto';
import type { EntraIdStandIn } from './entraId.js';
import { sendJson, startLocalServer } from './localServer.js';
import type { RegistryTokenServer } from './registryTokenServer.js';

/**
 * Azure Resource Manager for one registry's repository-scoped access (api-version 2023-07-01): scope
 * maps, tokens bound to them, and `generateCredentials` on a token's two password slots, with expiry.
 * A password works at the registry's token endpoint for exactly what its token's scope map allows,
 * until it expires, is regenerated, or its token is deleted. `generateCredentials` answers 200, or
 * 202 + Location when `asynchronous` (optionally ending in failure).
 */
export const ARM_API_VERSION = '2023-07-01';

export interface ScopeMapResource {
  name: string;
  description: string;
  actions: string[];
}

export interface TokenResource {
  name: string;
  scopeMapName: string | undefined;
  status: 'enabled' | 'disabled';
  /** Current value per password slot. */
  passwords: Map<string, string>;
}

/** Scope-map actions for the distribution actions: pull reads content, push writes it, delete deletes it. */
const CONTENT_ACTION: Record<string, string> = { pull: 'read', push: 'write', delete: 'delete' };
const ACTION = /^repositories\/[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*\/(?:content\/(?:read|write|delete)|metadata\/(?:read|write))$/;
const NAME = /^[a-zA-Z0-9-]{5,50}$/;
export const REGISTRY_RESOURCE_ID = '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/sandbox/providers/Microsoft.ContainerRegistry/registries/sandboxacr';

export interface ArmStandIn {
  url: string;
  tokenName: string;
  registryResourceId: string;
  scopeMaps(): ScopeMapResource[];
  tokens(): TokenResource[];
  /** Scope-map creations (PUT of a new name): shows identical scope sets share one. */
  scopeMapCreates(): number;
  /** Slows every answer by this many milliseconds (0: off): the broker's deadline must end the wait. */
  setDelay(ms: number): void;
  generate(slot: string): string;
  slots(): Record<string, string>;
  setAsynchronous(mode: 'off' | 'succeed' | 'fail'): void;
  failNext(count: number, status: number): void;
  /** Also accepts tokens for this audience: the address of a proxy in front of it, which the broker asks tokens for. */
  acceptAudience(audience: string): void;
  close(): Promise<void>;
}

export interface ArmOptions {
  /** The rotation test's token: no scope map, its passwords work at the distribution realm for anything. */
  tokenName?: string;
  /** The ACR login server's token service: passwords of scope-map tokens are good there only. */
  acrService?: string;
}

export async function startArm(entra: EntraIdStandIn, registryTokens: RegistryTokenServer, options: ArmOptions = {}): Promise<ArmStandIn> {
  const tokenName = options.tokenName ?? 'broker-token';
  const scopeMaps = new Map<string, ScopeMapResource>();
  const tokens = new Map<string, TokenResource>([[tokenName, { name: tokenName, scopeMapName: undefined, status: 'enabled', passwords: new Map() }]]);
  const operations = new Map<string, unknown>();
  let asynchronous: 'off' | 'succeed' | 'fail' = 'off';
  let failures = { remaining: 0, status: 500 };
  let scopeMapCreates = 0;
  let delayMs = 0;
  let url = '';
  const audiences: string[] = [];

  /** Read at every token request, so a scope map's change or a disabled token takes effect at once. */
  const allows = (name: string) => (repository: string, action: string) => {
    const token = tokens.get(name);
    const map = token?.scopeMapName === undefined ? undefined : scopeMaps.get(token.scopeMapName);
    return token?.status === 'enabled' && map !== undefined && map.actions.includes(`repositories/${repository}/content/${CONTENT_ACTION[action]}`);
  };

  const generate = (slot: string, name = tokenName, expiry?: Date) => {
    const token = tokens.get(name)!;
    const previous = token.passwords.get(slot);
    if (previous) registryTokens.removePassword(name, previous);
    const value = randomBytes(24).toString('base64');
    token.passwords.set(slot, value);
    if (token.scopeMapName === undefined) registryTokens.addAccount(name, value);
    else registryTokens.addAccount(name, value, allows(name), { ...(expiry ? { expiresAt: expiry } : {}), ...(options.acrService ? { service: options.acrService } : {}) });
    return value;
  };
  const result = (name: string, slot: string, value: string, expiry: string) => ({
    username: name,
    passwords: [{ name: slot, value, creationTime: new Date().toISOString(), expiry }],
  });
  const resourceId = (kind: string, name: string) => `${REGISTRY_RESOURCE_ID}/${kind}/${name}`;
  const scopeMapView = (map: ScopeMapResource) => ({
    id: resourceId('scopeMaps', map.name),
    name: map.name,
    type: 'Microsoft.ContainerRegistry/registries/scopeMaps',
    properties: { description: map.description, actions: map.actions, type: 'UserDefined', provisioningState: 'Succeeded' },
  });
  const tokenView = (token: TokenResource) => ({
    id: resourceId('tokens', token.name),
    name: token.name,
    type: 'Microsoft.ContainerRegistry/registries/tokens',
    properties: { scopeMapId: token.scopeMapName === undefined ? undefined : resourceId('scopeMaps', token.scopeMapName), status: token.status, provisioningState: 'Succeeded' },
  });
  const notFound = { error: { code: 'ResourceNotFound', message: 'The resource was not found.' } };
  const badRequest = (message: string) => ({ error: { code: 'InvalidRequestContent', message } });

  /** Scope maps and tokens: GET, PUT (create or replace), DELETE, as ARM answers them synchronously. */
  const childResource = (method: string, kind: 'scopeMaps' | 'tokens', name: string, body: string, response: import('node:http').ServerResponse) => {
    const store: Map<string, ScopeMapResource | TokenResource> = kind === 'scopeMaps' ? scopeMaps : tokens;
    const existing = store.get(name);
    if (method === 'GET') {
      if (!existing) return sendJson(response, 404, notFound);
      return sendJson(response, 200, kind === 'scopeMaps' ? scopeMapView(existing as ScopeMapResource) : tokenView(existing as TokenResource));
    }
    if (method === 'DELETE') {
      if (!existing) {
        response.writeHead(204);
        response.end();
        return;
      }
      if (kind === 'tokens') for (const password of (existing as TokenResource).passwords.values()) registryTokens.removePassword(name, password);
      store.delete(name);
      return sendJson(response, 200, {});
    }
    if (method !== 'PUT') return sendJson(response, 405, { error: { code: 'MethodNotAllowed' } });
    if (!NAME.test(name)) return sendJson(response, 400, badRequest('invalid resource name'));
    let properties: { description?: unknown; actions?: unknown; scopeMapId?: unknown; status?: unknown };
    try {
      properties = (JSON.parse(body || '{}') as { properties?: typeof properties }).properties ?? {};
    } catch {
      return sendJson(response, 400, badRequest('invalid JSON'));
    }
    if (kind === 'scopeMaps') {
      const actions = properties.actions;
      if (!Array.isArray(actions) || actions.length === 0 || actions.some((action) => typeof action !== 'string' || !ACTION.test(action))) {
        return sendJson(response, 400, badRequest('actions must be repositories/<name>/content|metadata/<action>'));
      }
      const map: ScopeMapResource = { name, description: typeof properties.description === 'string' ? properties.description : '', actions: actions as string[] };
      scopeMaps.set(name, map);
      if (!existing) scopeMapCreates += 1;
      return sendJson(response, existing ? 200 : 201, scopeMapView(map));
    }
    const prefix = `${REGISTRY_RESOURCE_ID}/scopeMaps/`;
    const scopeMapName = typeof properties.scopeMapId === 'string' && properties.scopeMapId.startsWith(prefix) ? properties.scopeMapId.slice(prefix.length) : undefined;
    if (scopeMapName === undefined || !scopeMaps.has(scopeMapName)) return sendJson(response, 400, badRequest('scopeMapId must name a scope map of this registry'));
    const token: TokenResource = {
      name,
      scopeMapName,
      status: properties.status === 'disabled' ? 'disabled' : 'enabled',
      passwords: (existing as TokenResource | undefined)?.passwords ?? new Map(),
    };
    tokens.set(name, token);
    return sendJson(response, existing ? 200 : 201, tokenView(token));
  };

  const server = await startLocalServer(async (request, response, body) => {
    const requestUrl = new URL(request.url ?? '/', 'http://localhost');
    const path = requestUrl.pathname;
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    if (response.destroyed) return;
    try {
      await entra.verify(request.headers.authorization?.replace(/^Bearer /, '') ?? '', [url, ...audiences]);
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
    if (!path.startsWith(`${REGISTRY_RESOURCE_ID}/`)) return sendJson(response, 404, notFound);
    if (requestUrl.searchParams.get('api-version') !== ARM_API_VERSION) {
      return sendJson(response, 400, { error: { code: 'InvalidApiVersionParameter', message: `use api-version ${ARM_API_VERSION}` } });
    }
    const child = /^\/(scopeMaps|tokens)\/([^/]+)$/.exec(path.slice(REGISTRY_RESOURCE_ID.length));
    if (child) return childResource(request.method ?? 'GET', child[1] as 'scopeMaps' | 'tokens', decodeURIComponent(child[2]!), body, response);
    if (request.method !== 'POST' || path !== `${REGISTRY_RESOURCE_ID}/generateCredentials`) return sendJson(response, 404, notFound);
    const input = JSON.parse(body || '{}') as { tokenId?: string; name?: string; expiry?: string };
    const name = input.tokenId?.startsWith(`${REGISTRY_RESOURCE_ID}/tokens/`) ? input.tokenId.slice(`${REGISTRY_RESOURCE_ID}/tokens/`.length) : undefined;
    const expiry = input.expiry === undefined ? undefined : new Date(input.expiry);
    if (name === undefined || !tokens.has(name) || (input.name !== 'password1' && input.name !== 'password2')) {
      return sendJson(response, 400, { error: { code: 'InvalidRequest', message: 'unknown token or password name' } });
    }
    if (expiry !== undefined && Number.isNaN(expiry.getTime())) return sendJson(response, 400, badRequest('expiry must be a date-time'));
    const slot = input.name;
    const generated = () => result(name, slot, generate(slot, name, expiry), expiry?.toISOString() ?? '');
    if (asynchronous === 'off') return sendJson(response, 200, generated());
    const id = randomUUID();
    operations.set(id, asynchronous === 'fail' ? { status: 'Failed', error: { code: 'InternalError', message: 'operation failed' } } : generated());
    response.writeHead(202, { Location: `${url}/operations/${id}`, 'Retry-After': '0' });
    response.end();
  });
  url = server.url;

  return {
    url,
    tokenName,
    registryResourceId: REGISTRY_RESOURCE_ID,
    generate: (slot) => generate(slot),
    slots: () => Object.fromEntries(tokens.get(tokenName)!.passwords),
    scopeMaps: () => [...scopeMaps.values()],
    tokens: () => [...tokens.values()].filter((token) => token.name !== tokenName),
    scopeMapCreates: () => scopeMapCreates,
    setDelay: (ms) => {
      delayMs = ms;
    },
    setAsynchronous: (mode) => {
      asynchronous = mode;
    },
    failNext: (count, status) => {
      failures = { remaining: count, status };
    },
    acceptAudience: (audience) => void audiences.push(audience),
    close: () => server.close(),
  };
}
