import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { EntraIdStandIn } from './entraId.js';
import { sendJson, startLocalServer } from './localServer.js';

/**
 * Key Vault stand-in speaking the secrets REST shapes the real SDK expects: the 401 challenge, bearer
 * tokens checked for audience and signature, RBAC-like readers, versions, and `enabled`/`exp`/`nbf`
 * enforced (the SDK does not). `down` makes it reset every connection, as an unreachable vault would.
 */
export interface SecretVersion {
  value: string;
  version: string;
  contentType?: string;
  tags: Record<string, string>;
  enabled: boolean;
  created: number;
  updated: number;
  exp?: number;
  nbf?: number;
}

export interface KeyVaultStandIn {
  url: string;
  setSecret(name: string, value: string, options?: Partial<Omit<SecretVersion, 'value' | 'version'>>): SecretVersion;
  versions(name: string): SecretVersion[];
  /** Every value ever stored, in any secret and version: secret scans look for each. */
  allValues(): string[];
  update(name: string, version: string, change: Partial<SecretVersion>): void;
  /** Object IDs allowed to read and write secrets (the broker's identity). */
  allow(objectId: string): void;
  setDown(down: boolean): void;
  /** Refuse writes with 403, as a vault without Secrets Officer for the broker would. */
  setWritesDenied(denied: boolean): void;
  requests(): number;
  close(): Promise<void>;
}

const VAULT_RESOURCE = 'https://vault.azure.net';

function vaultError(response: ServerResponse, status: number, code: string, message: string): void {
  sendJson(response, status, { error: { code, message } });
}

export async function startKeyVault(entra: EntraIdStandIn, options: { port?: number } = {}): Promise<KeyVaultStandIn> {
  const secrets = new Map<string, SecretVersion[]>();
  const readers = new Set<string>();
  let down = false;
  let writesDenied = false;
  let requests = 0;

  const bundle = (base: string, name: string, secret: SecretVersion, withValue = true) => ({
    ...(withValue ? { value: secret.value } : {}),
    id: `${base}/secrets/${name}/${secret.version}`,
    ...(secret.contentType ? { contentType: secret.contentType } : {}),
    tags: secret.tags,
    attributes: {
      enabled: secret.enabled,
      created: secret.created,
      updated: secret.updated,
      ...(secret.exp !== undefined ? { exp: secret.exp } : {}),
      ...(secret.nbf !== undefined ? { nbf: secret.nbf } : {}),
      recoveryLevel: 'Recoverable+Purgeable',
      recoverableDays: 90,
    },
  });

  const setSecret: KeyVaultStandIn['setSecret'] = (name, value, extra = {}) => {
    const now = Math.floor(Date.now() / 1000);
    const secret: SecretVersion = { value, version: randomBytes(16).toString('hex'), tags: {}, enabled: true, created: now, updated: now, ...extra };
    secrets.set(name, [...(secrets.get(name) ?? []), secret]);
    return secret;
  };

  const server = await startLocalServer(async (request, response, body) => {
    requests += 1;
    if (down) {
      request.socket.destroy();
      return;
    }
    const base = `http://${request.headers.host}`;
    const url = new URL(request.url ?? '/', base);
    if (url.searchParams.get('api-version') === null) return vaultError(response, 400, 'BadParameter', 'api-version is required');
    const authorization = request.headers.authorization;
    if (!authorization?.startsWith('Bearer ')) {
      response.writeHead(401, {
        'WWW-Authenticate': `Bearer authorization="${entra.url}/${entra.tenantId}", resource="${VAULT_RESOURCE}"`,
        'Content-Type': 'application/json',
      });
      response.end(JSON.stringify({ error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } }));
      return;
    }
    let caller: string;
    try {
      const claims = await entra.verify(authorization.slice(7), VAULT_RESOURCE);
      caller = String(claims.oid);
    } catch {
      return vaultError(response, 401, 'Unauthorized', 'AKV10022: Invalid audience or signature.');
    }
    if (!readers.has(caller)) return vaultError(response, 403, 'Forbidden', 'Caller is not authorized to perform action on resource.');

    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] !== 'secrets') return vaultError(response, 404, 'NotFound', 'Unknown path');
    if (parts.length === 1 && request.method === 'GET') {
      const value = [...secrets.entries()].map(([name, versions]) => {
        const { value: _value, ...rest } = bundle(base, name, versions.at(-1)!);
        return { ...rest, id: `${base}/secrets/${name}` };
      });
      return sendJson(response, 200, { value, nextLink: null });
    }
    const name = parts[1]!;
    const versions = secrets.get(name);
    if ((request.method === 'PUT' || request.method === 'PATCH') && writesDenied) {
      return vaultError(response, 403, 'Forbidden', 'The user, group or application does not have secrets set permission on key vault.');
    }
    if (parts.length === 2 && request.method === 'PUT') {
      const input = JSON.parse(body) as { value: string; contentType?: string; tags?: Record<string, string>; attributes?: { enabled?: boolean; exp?: number; nbf?: number } };
      const created = setSecret(name, input.value, {
        contentType: input.contentType,
        tags: input.tags ?? {},
        enabled: input.attributes?.enabled ?? true,
        exp: input.attributes?.exp,
        nbf: input.attributes?.nbf,
      });
      return sendJson(response, 200, bundle(base, name, created));
    }
    if (!versions) return vaultError(response, 404, 'SecretNotFound', `A secret with (name/id) ${name} was not found in this key vault.`);
    if (parts.length === 3 && parts[2] === 'versions' && request.method === 'GET') {
      return sendJson(response, 200, { value: versions.map((v) => bundle(base, name, v, false)), nextLink: null });
    }
    if (request.method === 'PATCH' && parts.length === 3) {
      const target = versions.find((v) => v.version === parts[2]);
      if (!target) return vaultError(response, 404, 'SecretNotFound', `A secret with (name/id) ${name}/${parts[2]} was not found in this key vault.`);
      const input = JSON.parse(body || '{}') as { contentType?: string; tags?: Record<string, string>; attributes?: { enabled?: boolean; exp?: number; nbf?: number } };
      if (input.attributes?.enabled !== undefined) target.enabled = input.attributes.enabled;
      if (input.attributes?.exp !== undefined) target.exp = input.attributes.exp;
      if (input.tags) target.tags = input.tags;
      target.updated = Math.floor(Date.now() / 1000);
      return sendJson(response, 200, bundle(base, name, target, false));
    }
    if (request.method !== 'GET' || parts.length > 3) return vaultError(response, 405, 'MethodNotAllowed', 'Not supported by the stand-in');
    const secret = parts[2] ? versions.find((v) => v.version === parts[2]) : versions.at(-1);
    if (!secret) return vaultError(response, 404, 'SecretNotFound', `A secret with (name/id) ${name}/${parts[2]} was not found in this key vault.`);
    const now = Math.floor(Date.now() / 1000);
    if (!secret.enabled) return vaultError(response, 403, 'Forbidden', 'Operation get is not allowed on a disabled secret.');
    if (secret.exp !== undefined && secret.exp <= now) return vaultError(response, 403, 'Forbidden', 'Operation get is not allowed on an expired secret.');
    if (secret.nbf !== undefined && secret.nbf > now) return vaultError(response, 403, 'Forbidden', 'Operation get is not allowed on a secret that is not yet valid.');
    return sendJson(response, 200, bundle(base, name, secret));
  }, options.port);

  return {
    url: server.url,
    setSecret,
    versions: (name) => secrets.get(name) ?? [],
    allValues: () => [...secrets.values()].flat().map((secret) => secret.value),
    update: (name, version, change) => {
      const secret = secrets.get(name)?.find((v) => v.version === version);
      if (secret) Object.assign(secret, change);
    },
    allow: (objectId) => readers.add(objectId),
    setDown: (value) => {
      down = value;
    },
    setWritesDenied: (value) => {
      writesDenied = value;
    },
    requests: () => requests,
    close: () => server.close(),
  };
}
