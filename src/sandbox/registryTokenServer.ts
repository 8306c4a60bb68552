import 'reflect-metadata';
import { createHash, randomUUID, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { decodeJwt, jwtVerify, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { basicCredentials, sendJson, startLocalServer } from './localServer.js';

/**
 * A distribution token server (the realm a registry's `/v2/` challenge names), like auth.docker.io.
 * Checks the account's Basic credentials, grants the requested repository scopes, and signs an ES256
 * JWT the real docker-registry accepts: `kid` in libtrust form, `aud` a string equal to the service.
 * Faults can be injected: answer N requests with a status, or hang.
 */
export interface RegistryTokenServer {
  url: string;
  realm: string;
  service: string;
  issuer: string;
  /** PEM certificate for the registry's `auth.token.rootcertbundle`. */
  rootCertificatePem: string;
  /**
   * Accepts `password` for `username`. With `allows`, a token minted with it grants only the
   * requested actions `allows` accepts, the way Docker Hub narrows a token to what its account may do.
   */
  addAccount(username: string, password: string, allows?: AccessRule, options?: AccountOptions): void;
  removePassword(username: string, password: string): void;
  failNext(count: number, status: number, retryAfterSeconds?: number): void;
  setHang(hang: boolean): void;
  setLifetime(seconds: number): void;
  /** Serves ACR's /oauth2/exchange and /oauth2/token for a registry whose service is `service`. */
  enableAcr(service: string): void;
  /** Successful /oauth2/exchange calls: shows the broker caches its ACR refresh token. */
  acrExchanges(): number;
  /** Refuses every ACR refresh token issued so far, as a registry does after a credential change. */
  revokeAcrRefreshTokens(): void;
  /** Token requests at the distribution realm (`/token`). */
  requests(): number;
  close(): Promise<void>;
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(bytes: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** docker/libtrust key ID: SHA-256 of the DER SPKI, first 240 bits, base32, groups of four. */
export function libtrustKeyId(spkiDer: Uint8Array): string {
  const encoded = base32(createHash('sha256').update(spkiDer).digest().subarray(0, 30));
  return encoded.match(/.{4}/g)!.join(':');
}

const ACTIONS = new Set(['pull', 'push', 'delete', '*']);

/** What one stored password may do: consulted per requested (repository, action). */
export type AccessRule = (repository: string, action: string) => boolean;
const ANYTHING: AccessRule = () => true;

export interface AccountOptions {
  /** From then on the password is refused (401), like an expired access token or token password. */
  expiresAt?: Date;
  /** The only service it is good for (an ACR login server's); default: the distribution realm's. */
  service?: string;
}

interface Account {
  allows: AccessRule;
  expiresAt: number;
  service: string | undefined;
}

function parseScopes(scopes: string[]): { type: string; name: string; actions: string[] }[] {
  return scopes.flatMap((scope) => {
    const [type, name, actions] = scope.split(':');
    if (type !== 'repository' || !name || !actions) return [];
    return [{ type, name, actions: actions.split(',').filter((action) => ACTIONS.has(action)) }];
  });
}

export interface TokenServerOptions {
  service?: string;
  issuer?: string;
  port?: number;
  /** ACR emulation: checks the Entra token presented at /oauth2/exchange (signature, audience). */
  entra?: { tenantId: string; verify(token: string, audience: string): Promise<JWTPayload> };
  /** Lifetime of the registry tokens it signs for Basic credentials (SANDBOX_REGISTRY_TOKEN_SECONDS); default 300, like Docker Hub. */
  tokenSeconds?: number;
}

/** The Entra audience ACR requires at /oauth2/exchange. */
export const ACR_AUDIENCE = 'https://containerregistry.azure.net';

export async function startRegistryTokenServer(options: TokenServerOptions = {}): Promise<RegistryTokenServer> {
  const service = options.service ?? 'sandbox-registry';
  const issuer = options.issuer ?? 'sandbox-token-server';
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${issuer}`,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 365 * 24 * 3600_000),
    signingAlgorithm: algorithm,
    keys,
  });
  const spki = new Uint8Array(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  const kid = libtrustKeyId(spki);
  const accounts = new Map<string, Map<string, Account>>();
  let failures: { remaining: number; status: number; retryAfter?: number } = { remaining: 0, status: 500 };
  let hang = false;
  let lifetime = options.tokenSeconds ?? 300;
  let requests = 0;
  let acrService: string | undefined;
  let acrExchanges = 0;
  const issuedRefresh = new Set<string>();
  const revokedRefresh = new Set<string>();
  const ACR_ACCESS_LIFETIME = 75 * 60;
  const ACR_REFRESH_LIFETIME = 3 * 3600;

  const sign = (claims: JWTPayload, audience: string, subject: string, seconds: number) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid })
      .setIssuer(issuer)
      .setSubject(subject)
      .setAudience(audience)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + seconds)
      .setJti(randomUUID())
      .sign(keys.privateKey as CryptoKey);
  };

  /** ACR's OAuth2 endpoints (form posts), as the broker's ACR client uses them. */
  const acr = async (path: string, form: URLSearchParams, response: import('node:http').ServerResponse) => {
    if (!acrService || !options.entra) return sendJson(response, 404, { errors: [{ code: 'NOT_FOUND' }] });
    if (form.get('service') !== acrService) return sendJson(response, 400, { errors: [{ code: 'UNSUPPORTED', message: 'unknown service' }] });
    if (path === '/oauth2/exchange') {
      if (form.get('grant_type') !== 'access_token') return sendJson(response, 400, { errors: [{ code: 'UNSUPPORTED' }] });
      let claims: JWTPayload;
      try {
        claims = await options.entra.verify(form.get('access_token') ?? '', ACR_AUDIENCE);
      } catch {
        return sendJson(response, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'invalid Entra token' }] });
      }
      if (claims.tid !== options.entra.tenantId || form.get('tenant') !== options.entra.tenantId) {
        return sendJson(response, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'wrong tenant' }] });
      }
      acrExchanges += 1;
      const refreshToken = await sign({ grant_type: 'refresh_token' }, acrService, String(claims.oid), ACR_REFRESH_LIFETIME);
      issuedRefresh.add(String(decodeJwt(refreshToken).jti));
      return sendJson(response, 200, { refresh_token: refreshToken });
    }
    if (form.get('grant_type') !== 'refresh_token') return sendJson(response, 400, { errors: [{ code: 'UNSUPPORTED' }] });
    let subject: string;
    try {
      const { payload } = await jwtVerify(form.get('refresh_token') ?? '', keys.publicKey as CryptoKey, { issuer, audience: acrService });
      if (payload.grant_type !== 'refresh_token') throw new Error('not a refresh token');
      if (typeof payload.jti !== 'string' || revokedRefresh.has(payload.jti)) throw new Error('revoked');
      subject = String(payload.sub);
    } catch {
      return sendJson(response, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'invalid refresh token' }] });
    }
    const access = parseScopes((form.get('scope') ?? '').split(' ').filter(Boolean));
    return sendJson(response, 200, { access_token: await sign({ access }, acrService, subject, ACR_ACCESS_LIFETIME) });
  };

  /** The account behind Basic credentials, if it is good for `forService` now; expired passwords are refused. */
  const account = (header: string | undefined, forService: string) => {
    const credentials = basicCredentials(header);
    const found = credentials ? accounts.get(credentials.username)?.get(credentials.password) : undefined;
    if (!credentials || !found || Date.now() >= found.expiresAt || (found.service ?? service) !== forService) return undefined;
    return { username: credentials.username, allows: found.allows };
  };

  /** Like Docker Hub and distribution's token servers: what the account may not do is left out, not refused. */
  const basicToken = async (response: import('node:http').ServerResponse, scopes: string[], forService: string, who: { username: string; allows: AccessRule }) => {
    const access = parseScopes(scopes)
      .map((scope) => ({ ...scope, actions: scope.actions.filter((action) => who.allows(scope.name, action)) }))
      .filter((scope) => scope.actions.length > 0);
    const token = await sign({ access }, forService, who.username, lifetime);
    sendJson(response, 200, { token, access_token: token, expires_in: lifetime, issued_at: new Date().toISOString() });
  };

  const server = await startLocalServer(async (request, response, body) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (request.method === 'POST' && (url.pathname === '/oauth2/exchange' || url.pathname === '/oauth2/token')) {
      return acr(url.pathname, new URLSearchParams(body), response);
    }
    if (request.method === 'GET' && url.pathname === '/oauth2/token') {
      // ACR repository-scoped tokens: docker login / skopeo --creds present token name and password here.
      if (!acrService || url.searchParams.get('service') !== acrService) return sendJson(response, 400, { errors: [{ code: 'UNSUPPORTED', message: 'unknown service' }] });
      const who = account(request.headers.authorization, acrService);
      if (!who) return sendJson(response, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }] });
      return basicToken(response, url.searchParams.getAll('scope').flatMap((scope) => scope.split(' ')), acrService, who);
    }
    if (url.pathname === '/v2/' || url.pathname === '/v2') {
      // Stands in for a registry's challenge when no docker-registry runs (tokens, but no pushes).
      return sendJson(response, 401, { errors: [{ code: 'UNAUTHORIZED' }] }, {
        'WWW-Authenticate': `Bearer realm="${server.url}/token",service="${service}"`,
      });
    }
    if (url.pathname !== '/token') return sendJson(response, 404, { errors: [{ code: 'NOT_FOUND' }] });
    requests += 1;
    if (hang) return; // never answers: the broker's deadline must end the wait
    if (failures.remaining > 0) {
      failures.remaining -= 1;
      const headers: Record<string, string> = failures.retryAfter !== undefined ? { 'Retry-After': String(failures.retryAfter) } : {};
      return sendJson(response, failures.status, { details: 'injected failure' }, headers);
    }
    const who = account(request.headers.authorization, service);
    if (!who) return sendJson(response, 401, { details: 'incorrect username or password' });
    if (url.searchParams.get('service') !== service) return sendJson(response, 400, { details: 'unknown service' });
    return basicToken(response, url.searchParams.getAll('scope'), service, who);
  }, options.port);

  return {
    url: server.url,
    realm: `${server.url}/token`,
    service,
    issuer,
    rootCertificatePem: certificate.toString('pem'),
    addAccount: (username, password, allows = ANYTHING, account = {}) => {
      const passwords = accounts.get(username) ?? new Map<string, Account>();
      passwords.set(password, { allows, expiresAt: account.expiresAt?.getTime() ?? Infinity, service: account.service });
      accounts.set(username, passwords);
    },
    removePassword: (username, password) => accounts.get(username)?.delete(password),
    failNext: (count, status, retryAfter) => {
      failures = { remaining: count, status, ...(retryAfter !== undefined ? { retryAfter } : {}) };
    },
    setHang: (value) => {
      hang = value;
    },
    setLifetime: (seconds) => {
      lifetime = seconds;
    },
    enableAcr: (name) => {
      acrService = name;
    },
    acrExchanges: () => acrExchanges,
    revokeAcrRefreshTokens: () => {
      for (const jti of issuedRefresh) revokedRefresh.add(jti);
    },
    requests: () => requests,
    close: () => server.close(),
  };
}
