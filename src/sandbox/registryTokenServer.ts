import 'reflect-metadata';
import { createHash, randomUUID, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { SignJWT, type CryptoKey } from 'jose';
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
  addAccount(username: string, password: string): void;
  removePassword(username: string, password: string): void;
  failNext(count: number, status: number, retryAfterSeconds?: number): void;
  setHang(hang: boolean): void;
  setLifetime(seconds: number): void;
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

function parseScopes(scopes: string[]): { type: string; name: string; actions: string[] }[] {
  return scopes.flatMap((scope) => {
    const [type, name, actions] = scope.split(':');
    if (type !== 'repository' || !name || !actions) return [];
    return [{ type, name, actions: actions.split(',').filter((action) => ACTIONS.has(action)) }];
  });
}

export async function startRegistryTokenServer(options: { service?: string; issuer?: string; port?: number } = {}): Promise<RegistryTokenServer> {
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
  const accounts = new Map<string, Set<string>>();
  let failures: { remaining: number; status: number; retryAfter?: number } = { remaining: 0, status: 500 };
  let hang = false;
  let lifetime = 300;
  let requests = 0;

  const server = await startLocalServer(async (request, response) => {
    requests += 1;
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (url.pathname !== '/token') return sendJson(response, 404, { errors: [{ code: 'NOT_FOUND' }] });
    if (hang) return; // never answers: the broker's deadline must end the wait
    if (failures.remaining > 0) {
      failures.remaining -= 1;
      const headers: Record<string, string> = failures.retryAfter !== undefined ? { 'Retry-After': String(failures.retryAfter) } : {};
      return sendJson(response, failures.status, { details: 'injected failure' }, headers);
    }
    const credentials = basicCredentials(request.headers.authorization);
    if (!credentials || !accounts.get(credentials.username)?.has(credentials.password)) {
      return sendJson(response, 401, { details: 'incorrect username or password' });
    }
    if (url.searchParams.get('service') !== service) return sendJson(response, 400, { details: 'unknown service' });
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ access: parseScopes(url.searchParams.getAll('scope')) })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid })
      .setIssuer(issuer)
      .setSubject(credentials.username)
      .setAudience(service)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + lifetime)
      .setJti(randomUUID())
      .sign(keys.privateKey as CryptoKey);
    sendJson(response, 200, { token, access_token: token, expires_in: lifetime, issued_at: new Date(now * 1000).toISOString() });
  }, options.port);

  return {
    url: server.url,
    realm: `${server.url}/token`,
    service,
    issuer,
    rootCertificatePem: certificate.toString('pem'),
    addAccount: (username, password) => accounts.set(username, new Set([...(accounts.get(username) ?? []), password])),
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
    requests: () => requests,
    close: () => server.close(),
  };
}
