import { randomBytes, randomUUID } from 'node:crypto';
import { sendJson, startLocalServer } from './localServer.js';
import type { RegistryTokenServer } from './registryTokenServer.js';

/**
 * Docker Hub's account API, as far as rotation uses it: sign in with the account password, create,
 * list and delete access tokens. Tokens it creates are accepted by the registry token server as the
 * account's password, and stop being accepted the moment they are deleted.
 */
export interface HubAccessToken {
  uuid: string;
  label: string;
  token: string;
  scopes: string[];
  expiresAt: string;
}

export interface DockerHubApi {
  url: string;
  username: string;
  adminPassword: string;
  /** Creates a token directly (the credential an operator would have put in Key Vault by hand). */
  createToken(label: string): HubAccessToken;
  activeTokens(): HubAccessToken[];
  createdCount(): number;
  failNext(count: number, status: number): void;
  /** Create the next token, then drop the connection: the caller never learns it exists. */
  dropNextCreateAnswer(): void;
  close(): Promise<void>;
}

export async function startDockerHubApi(tokens: RegistryTokenServer, username: string): Promise<DockerHubApi> {
  const adminPassword = randomBytes(18).toString('base64url');
  const sessions = new Set<string>();
  const active = new Map<string, HubAccessToken>();
  let created = 0;
  let failures = { remaining: 0, status: 500 };
  let dropNext = false;

  const createToken = (label: string, scopes = ['repo:write'], expiresAt = new Date(Date.now() + 90 * 86_400_000).toISOString()) => {
    const token: HubAccessToken = { uuid: randomUUID(), label, token: `dckr_pat_${randomBytes(20).toString('base64url')}`, scopes, expiresAt };
    active.set(token.uuid, token);
    tokens.addAccount(username, token.token);
    created += 1;
    return token;
  };

  const server = await startLocalServer(async (request, response, body) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (failures.remaining > 0) {
      failures.remaining -= 1;
      return sendJson(response, failures.status, { message: 'injected failure' });
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
    createToken: (label) => createToken(label),
    activeTokens: () => [...active.values()],
    createdCount: () => created,
    failNext: (count, status) => {
      failures = { remaining: count, status };
    },
    dropNextCreateAnswer: () => {
      dropNext = true;
    },
    close: () => server.close(),
  };
}
