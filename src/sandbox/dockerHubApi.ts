import { randomBytes, randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { sendJson, startLocalServer } from './localServer.js';
import type { AccessRule, RegistryTokenServer } from './registryTokenServer.js';

/**
 * Docker Hub's API, as far as the broker uses it: sign in with the account password; personal access
 * tokens (rotation) and organization access tokens (login credentials): create, list, delete. Tokens
 * it creates are accepted by the registry token server as the account's (or organization's) password,
 * an organization access token for no more than its resources allow, until it expires or is deleted.
 */
export interface HubAccessToken {
  uuid: string;
  label: string;
  token: string;
  scopes: string[];
  expiresAt: string;
}

/** Docker Hub's repository scopes for organization access tokens; each includes the one before it. */
export const OAT_REPOSITORY_SCOPES = ['scope-image-pull', 'scope-image-push', 'scope-image-delete'] as const;

export interface OatResource {
  type: 'TYPE_REPO' | 'TYPE_ORG';
  path: string;
  scopes: string[];
}

export interface HubOrgAccessToken {
  id: string;
  label: string;
  description: string;
  token: string;
  resources: OatResource[];
  expiresAt: string | null;
  createdAt: string;
}

export interface DockerHubApi {
  url: string;
  username: string;
  adminPassword: string;
  /** The organization the account owns: organization access tokens sign in to the registry with this name. */
  organization: string;
  /** Organization access tokens not deleted (expired ones included, as on Docker Hub). */
  orgTokens(): HubOrgAccessToken[];
  /** Organization access tokens created so far. */
  orgTokenCreates(): number;
  setHang(hang: boolean): void;
  /** Ends every API session, as Docker Hub does when its bearer tokens expire. */
  expireSessions(): void;
  /** Creates a token directly (the credential an operator would have put in Key Vault by hand). */
  createToken(label: string): HubAccessToken;
  activeTokens(): HubAccessToken[];
  createdCount(): number;
  failNext(count: number, status: number, retryAfterSeconds?: number): void;
  /** Create the next token, then drop the connection: the caller never learns it exists. */
  dropNextCreateAnswer(): void;
  close(): Promise<void>;
}

/** What an organization access token lets its holder do at the registry, from its resources. */
function oatAllows(resources: OatResource[]): AccessRule {
  const covers = (path: string, repository: string) =>
    path === repository || (path.endsWith('/*') && repository.startsWith(path.slice(0, -1)) && !repository.slice(path.length - 1).includes('/'));
  const level = (scopes: string[]) => Math.max(-1, ...scopes.map((scope) => (OAT_REPOSITORY_SCOPES as readonly string[]).indexOf(scope)));
  const needed: Record<string, number> = { pull: 0, push: 1, delete: 2 };
  return (repository, action) =>
    resources.some((resource) => resource.type === 'TYPE_REPO' && covers(resource.path, repository) && level(resource.scopes) >= (needed[action] ?? Infinity));
}

const MAX_LABEL = 100;
const MAX_DESCRIPTION = 200;
const MAX_RESOURCES = 50;

export async function startDockerHubApi(tokens: RegistryTokenServer, username: string, organization = 'demo'): Promise<DockerHubApi> {
  const adminPassword = randomBytes(18).toString('base64url');
  const sessions = new Set<string>();
  const active = new Map<string, HubAccessToken>();
  const orgTokens = new Map<string, HubOrgAccessToken>();
  let created = 0;
  let orgCreated = 0;
  let failures: { remaining: number; status: number; retryAfter?: number } = { remaining: 0, status: 500 };
  let dropNext = false;
  let hang = false;

  const invalid = (response: ServerResponse, message: string) => sendJson(response, 400, { message, errinfo: {} });
  const view = (token: HubOrgAccessToken) => ({
    id: token.id,
    label: token.label,
    description: token.description,
    created_at: token.createdAt,
    created_by: username,
    expires_at: token.expiresAt,
    is_active: token.expiresAt === null || Date.parse(token.expiresAt) > Date.now(),
    last_used_at: null,
    resources: token.resources,
  });

  /** POST /v2/orgs/{org}/access-tokens, validated the way Docker Hub documents it. */
  const createOrgToken = (response: ServerResponse, body: string) => {
    let input: { label?: unknown; description?: unknown; resources?: unknown; expires_at?: unknown };
    try {
      input = JSON.parse(body || '{}') as typeof input;
    } catch {
      return invalid(response, 'invalid JSON');
    }
    if (typeof input.label !== 'string' || input.label.length < 1 || input.label.length > MAX_LABEL) return invalid(response, 'label is required');
    if (input.description !== undefined && (typeof input.description !== 'string' || input.description.length > MAX_DESCRIPTION)) return invalid(response, 'description too long');
    if (!Array.isArray(input.resources) || input.resources.length < 1 || input.resources.length > MAX_RESOURCES) return invalid(response, 'resources: 1 to 50 required');
    const resources: OatResource[] = [];
    for (const resource of input.resources as Partial<OatResource>[]) {
      const scopes = Array.isArray(resource.scopes) ? resource.scopes.filter((scope): scope is string => typeof scope === 'string') : [];
      if (resource.type !== 'TYPE_REPO' || typeof resource.path !== 'string' || !resource.path.startsWith(`${organization}/`)) {
        return invalid(response, 'resources must be repositories of this organization');
      }
      if (scopes.length === 0 || scopes.some((scope) => !(OAT_REPOSITORY_SCOPES as readonly string[]).includes(scope))) return invalid(response, 'unknown scope');
      resources.push({ type: 'TYPE_REPO', path: resource.path, scopes });
    }
    let expiresAt: string | null = null;
    if (input.expires_at !== undefined && input.expires_at !== null) {
      const when = typeof input.expires_at === 'string' ? Date.parse(input.expires_at) : NaN;
      if (Number.isNaN(when) || when <= Date.now()) return invalid(response, 'expires_at must be a future date-time');
      expiresAt = new Date(when).toISOString();
    }
    const token: HubOrgAccessToken = {
      id: randomUUID(),
      label: input.label,
      description: typeof input.description === 'string' ? input.description : '',
      token: `dckr_oat_${randomBytes(24).toString('base64url')}`,
      resources,
      expiresAt,
      createdAt: new Date().toISOString(),
    };
    orgTokens.set(token.id, token);
    orgCreated += 1;
    tokens.addAccount(organization, token.token, oatAllows(resources), expiresAt === null ? {} : { expiresAt: new Date(expiresAt) });
    return sendJson(response, 201, { ...view(token), token: token.token });
  };

  const orgTokenRoutes = (request: import('node:http').IncomingMessage, response: ServerResponse, url: URL, body: string): boolean => {
    const match = /^\/v2\/orgs\/([^/]+)\/access-tokens(?:\/([^/]+))?$/.exec(url.pathname);
    if (!match) return false;
    if (decodeURIComponent(match[1]!) !== organization) {
      sendJson(response, 403, { message: 'not an owner of this organization' });
      return true;
    }
    const id = match[2] === undefined ? undefined : decodeURIComponent(match[2]);
    if (id === undefined && request.method === 'POST') {
      createOrgToken(response, body);
    } else if (id === undefined && request.method === 'GET') {
      const pageSize = Math.min(100, Math.max(1, Number(url.searchParams.get('page_size') ?? 10) || 10));
      const page = Math.max(1, Number(url.searchParams.get('page') ?? 1) || 1);
      const all = [...orgTokens.values()];
      const results = all.slice((page - 1) * pageSize, page * pageSize).map(view);
      const link = (to: number) => `${server.url}${url.pathname}?page=${to}&page_size=${pageSize}`;
      sendJson(response, 200, { total: all.length, next: page * pageSize < all.length ? link(page + 1) : null, previous: page > 1 ? link(page - 1) : null, results });
    } else if (id !== undefined && (request.method === 'GET' || request.method === 'DELETE')) {
      const token = orgTokens.get(id);
      if (!token) {
        sendJson(response, 404, { message: 'access token not found' });
      } else if (request.method === 'GET') {
        sendJson(response, 200, view(token));
      } else {
        orgTokens.delete(id);
        tokens.removePassword(organization, token.token);
        response.writeHead(204);
        response.end();
      }
    } else {
      sendJson(response, 405, { message: 'method not allowed' });
    }
    return true;
  };

  const createToken = (label: string, scopes = ['repo:write'], expiresAt = new Date(Date.now() + 90 * 86_400_000).toISOString()) => {
    const token: HubAccessToken = { uuid: randomUUID(), label, token: `dckr_pat_${randomBytes(20).toString('base64url')}`, scopes, expiresAt };
    active.set(token.uuid, token);
    tokens.addAccount(username, token.token);
    created += 1;
    return token;
  };

  const server = await startLocalServer(async (request, response, body) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (hang) return; // never answers: the broker's deadline must end the wait
    if (failures.remaining > 0) {
      failures.remaining -= 1;
      return sendJson(response, failures.status, { message: 'injected failure' }, failures.retryAfter === undefined ? {} : { 'Retry-After': String(failures.retryAfter) });
    }
    if (request.method === 'POST' && url.pathname === '/v2/auth/token') {
      const input = JSON.parse(body || '{}') as { identifier?: string; secret?: string };
      if (input.identifier !== username || input.secret !== adminPassword) return sendJson(response, 401, { message: 'incorrect username or password' });
      const session = randomBytes(24).toString('base64url');
      sessions.add(session);
      return sendJson(response, 200, { access_token: session });
    }
    const bearer = request.headers.authorization?.replace(/^Bearer /, '');
    if (!bearer || !sessions.has(bearer)) return sendJson(response, 401, { message: 'authentication required' });
    if (orgTokenRoutes(request, response, url, body)) return;
    if (request.method === 'POST' && url.pathname === '/v2/access-tokens') {
      const input = JSON.parse(body || '{}') as { token_label: string; scopes: string[]; expires_at?: string };
      const token = createToken(input.token_label, input.scopes, input.expires_at);
      if (dropNext) {
        dropNext = false;
        request.socket.destroy();
        return;
      }
      return sendJson(response, 201, { uuid: token.uuid, token: token.token, token_label: token.label, scopes: token.scopes, expires_at: token.expiresAt, is_active: true });
    }
    if (request.method === 'GET' && url.pathname === '/v2/access-tokens') {
      const results = [...active.values()].map((t) => ({ uuid: t.uuid, token_label: t.label, scopes: t.scopes, is_active: true }));
      return sendJson(response, 200, { count: results.length, next: null, results });
    }
    const match = /^\/v2\/access-tokens\/([^/]+)$/.exec(url.pathname);
    if (request.method === 'DELETE' && match) {
      const token = active.get(decodeURIComponent(match[1]!));
      if (!token) return sendJson(response, 404, { message: 'not found' });
      active.delete(token.uuid);
      tokens.removePassword(username, token.token);
      response.writeHead(204);
      response.end();
      return;
    }
    return sendJson(response, 404, { message: 'not found' });
  });

  return {
    url: server.url,
    username,
    adminPassword,
    organization,
    orgTokens: () => [...orgTokens.values()],
    orgTokenCreates: () => orgCreated,
    setHang: (value) => {
      hang = value;
    },
    expireSessions: () => sessions.clear(),
    createToken: (label) => createToken(label),
    activeTokens: () => [...active.values()],
    createdCount: () => created,
    failNext: (count, status, retryAfter) => {
      failures = { remaining: count, status, ...(retryAfter === undefined ? {} : { retryAfter }) };
    },
    dropNextCreateAnswer: () => {
      dropNext = true;
    },
    close: () => server.close(),
  };
}
