import { randomUUID } from 'node:crypto';
import { base64url, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { AUDIENCE, problemOf, startHarness, type Harness } from '../support/harness.js';

/**
 * The caller's token is hostile input. Every way a token can be wrong must end in 401 problem+json
 * with `WWW-Authenticate: Bearer error="invalid_token"` and no token. Anyone can send these, so none
 * costs a durable row of its own: they are counted per (address, reason, minute) in aggregate rows.
 */
let h: Harness;
let caller: ManagedIdentity;
const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  h = await startHarness();
  caller = h.sandbox.identity('workload');
  await h.grant({ id: 'pull-web', subjects: [{ objectId: caller.objectId }], repositories: ['acme/web'], actions: ['pull'] });
});
afterAll(() => h?.close());

const body = () => ({ registry: h.sandbox.registry.host, scopes: ['repository:acme/web:pull'] });
const mint = (claims: Record<string, unknown> = {}, version: '1.0' | '2.0' = '1.0') =>
  h.sandbox.entra.mint({ identity: caller, audience: AUDIENCE, claims, version });

function unsigned(header: Record<string, unknown>, payload: Record<string, unknown>, signature = ''): string {
  const part = (value: unknown) => base64url.encode(JSON.stringify(value));
  return `${part(header)}.${part(payload)}.${signature}`;
}

async function expectRejected(authorization: string | undefined) {
  const headers: Record<string, string> = authorization === undefined ? {} : { Authorization: authorization };
  const response = await fetch(`${h.sandbox.broker.url}/api/v1/tokens`, { method: 'POST', headers, body: JSON.stringify(body()) });
  expect(response.status).toBe(401);
  expect(response.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
  const problem = await problemOf(response);
  expect(problem).toMatchObject({ status: 401, type: 'urn:registry-broker:problem:invalid-token' });
  expect(problem).not.toHaveProperty('token');
  const requestId = response.headers.get('x-request-id');
  expect((await h.auditRecords()).find((r) => r.requestId === requestId)).toBeUndefined();
  return problem;
}

describe('accepted tokens', () => {
  it.each(['1.0', '2.0'] as const)('a v%s managed-identity token is accepted', async (version) => {
    const response = await h.post('/v1/tokens', body(), await mint({}, version));
    expect(response.status).toBe(200);
  });

  it('clock skew up to 5 minutes is tolerated', async () => {
    const response = await h.post('/v1/tokens', body(), await mint({ exp: now() - 120, nbf: now() + 120 }));
    expect(response.status).toBe(200);
  });
});

describe('rejected tokens', () => {
  it('missing Authorization header', async () => {
    await expectRejected(undefined);
  });

  it('a scheme other than Bearer', async () => {
    await expectRejected(`Basic ${Buffer.from('user:pass').toString('base64')}`);
  });

  it('alg: none (empty signature)', async () => {
    const [, payload] = (await mint()).split('.');
    await expectRejected(`Bearer ${unsigned({ alg: 'none', typ: 'JWT' }, JSON.parse(Buffer.from(payload!, 'base64url').toString()))}`);
  });

  it('alg: none with a junk signature', async () => {
    const [, payload] = (await mint()).split('.');
    await expectRejected(`Bearer ${unsigned({ alg: 'none', kid: h.sandbox.entra.publicJwk.kid }, JSON.parse(Buffer.from(payload!, 'base64url').toString()), 'AAAA')}`);
  });

  it('HS256 signed with the public key (key confusion)', async () => {
    const [, payload] = (await mint()).split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
    const secret = new TextEncoder().encode(JSON.stringify(h.sandbox.entra.publicJwk));
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: h.sandbox.entra.publicJwk.kid }).sign(secret);
    const problem = await expectRejected(`Bearer ${forged}`);
    expect(problem.detail).toMatch(/RS256/);
  });

  it('unknown kid (a key the tenant never published)', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const token = await h.sandbox.entra.mint({ identity: caller, audience: AUDIENCE, signWith: { privateKey: privateKey as CryptoKey, kid: 'not-a-published-key' } });
    const problem = await expectRejected(`Bearer ${token}`);
    expect(problem.detail).toMatch(/unknown key/);
  });

  it('a published kid but another key\'s signature', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const token = await h.sandbox.entra.mint({ identity: caller, audience: AUDIENCE, signWith: { privateKey: privateKey as CryptoKey, kid: h.sandbox.entra.publicJwk.kid! } });
    await expectRejected(`Bearer ${token}`);
  });

  it('a tampered payload', async () => {
    const [header, , signature] = (await mint()).split('.');
    const other = h.sandbox.identity('other');
    const [, payload] = (await h.sandbox.entra.mint({ identity: other, audience: AUDIENCE })).split('.');
    await expectRejected(`Bearer ${header}.${payload}.${signature}`);
  });

  it('no kid in the header', async () => {
    const [, payload, signature] = (await mint()).split('.');
    await expectRejected(`Bearer ${base64url.encode(JSON.stringify({ alg: 'RS256', typ: 'JWT' }))}.${payload}.${signature}`);
  });

  it('wrong iss', async () => {
    await expectRejected(`Bearer ${await mint({ iss: 'https://sts.windows.net/00000000-0000-0000-0000-000000000000/' })}`);
  });

  it('an issuer that only differs in case or a trailing slash', async () => {
    await expectRejected(`Bearer ${await mint({ iss: h.sandbox.entra.v1Issuer.toUpperCase() })}`);
    await expectRejected(`Bearer ${await mint({ iss: h.sandbox.entra.v1Issuer.slice(0, -1) })}`);
  });

  it('wrong aud', async () => {
    const problem = await expectRejected(`Bearer ${await mint({ aud: 'https://management.azure.com' })}`);
    expect(problem.detail).toMatch(/audience/);
  });

  it('wrong tid', async () => {
    const problem = await expectRejected(`Bearer ${await mint({ tid: randomUUID() })}`);
    expect(problem.detail).toMatch(/tenant/);
  });

  it('expired beyond the allowed skew', async () => {
    const problem = await expectRejected(`Bearer ${await mint({ iat: now() - 7200, nbf: now() - 7200, exp: now() - 400 })}`);
    expect(problem.detail).toMatch(/expired/);
  });

  it('nbf in the future beyond the allowed skew', async () => {
    const problem = await expectRejected(`Bearer ${await mint({ nbf: now() + 600 })}`);
    expect(problem.detail).toMatch(/not valid yet/);
  });

  it('a delegated token with scp', async () => {
    const problem = await expectRejected(`Bearer ${await mint({ scp: 'user_impersonation' })}`);
    expect(problem.detail).toMatch(/Delegated/);
  });

  it('idtyp other than app', async () => {
    await expectRejected(`Bearer ${await mint({ idtyp: 'user' })}`);
  });

  it('a token without scp or idtyp whose subject is a user (sub ≠ oid, a upn) is not app-only', async () => {
    await expectRejected(`Bearer ${await mint({ sub: randomUUID(), upn: 'someone@contoso.example' })}`);
  });

  it('an ID token (no appid/azp; a nonce) is not an access token', async () => {
    await expectRejected(`Bearer ${await mint({ appid: undefined })}`);
    await expectRejected(`Bearer ${await mint({ azp: undefined }, '2.0')}`);
    const problem = await expectRejected(`Bearer ${await mint({ nonce: 'n-0S6_WzA2Mj' })}`);
    expect(problem.detail).toMatch(/ID tokens/);
  });

  it('no oid', async () => {
    await expectRejected(`Bearer ${await mint({ oid: undefined })}`);
  });

  it.each([
    ['not a JWT', 'not-a-jwt'],
    ['three junk segments', 'abc.def.ghi'],
    ['base64 that is not JSON', `${base64url.encode('{{')}.${base64url.encode('x')}.AAAA`],
    ['an empty token', ''],
    ['five segments (JWE shape)', 'a.b.c.d.e'],
  ])('malformed: %s', async (_name, token) => {
    await expectRejected(`Bearer ${token}`);
  });

  it('oversized token', async () => {
    const token = await mint({ padding: 'x'.repeat(7_000) });
    await expectRejected(`Bearer ${token}`);
  });

  it('a token past Node\'s default header limit (16 KiB) is still the broker\'s own 401', async () => {
    const token = await mint({ padding: 'x'.repeat(20_000) });
    await expectRejected(`Bearer ${token}`);
  });

  it('headers past even the host\'s limit get a 431 problem+json, not a bare status line', async () => {
    const response = await fetch(`${h.sandbox.broker.url}/api/v1/tokens`, { method: 'POST', headers: { Authorization: `Bearer ${'x'.repeat(70_000)}` }, body: '{}' });
    expect(response.status).toBe(431);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await response.json()).toMatchObject({ type: 'urn:registry-broker:problem:headers-too-large', status: 431 });
  });

  it('a flood of unknown kids refetches the key set at most once per cooldown', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const before = h.sandbox.entra.jwksRequests();
    for (let i = 0; i < 20; i++) {
      const token = await h.sandbox.entra.mint({ identity: caller, audience: AUDIENCE, signWith: { privateKey: privateKey as CryptoKey, kid: `junk-${i}` } });
      const response = await h.post('/v1/tokens', body(), token);
      expect(response.status).toBe(401);
    }
    expect(h.sandbox.entra.jwksRequests() - before).toBeLessThanOrEqual(1);
  });
});

describe('the audit of failed authentications', () => {
  it('holds per-minute aggregates with the reason of each failure, and no row per request', async () => {
    await h.sandbox.services.failedAuthentications.flush({ all: true });
    const aggregates = (await h.auditRecords()).filter((r) => r.requestId === 'aggregate');
    const reasons = new Set(aggregates.map((r) => r.reason));
    for (const reason of ['missing', 'scheme', 'algorithm', 'signature', 'unknown-key', 'no-kid', 'issuer', 'audience', 'tenant', 'expired', 'not-yet-valid', 'delegated', 'id-token', 'malformed', 'oversized']) {
      expect(reasons).toContain(`invalid-token:${reason}`);
    }
    for (const row of aggregates) {
      expect(row).toMatchObject({ outcome: 'denied', status: 401, clientIp: '127.0.0.1' });
      expect(row.count).toBeGreaterThan(0);
      expect(row.objectId).toBeUndefined();
    }
    expect(aggregates.reduce((sum, row) => sum + Number(row.count), 0)).toBeGreaterThanOrEqual(25);
    expect((await h.auditRecords()).filter((r) => r.status === 401 && r.requestId !== 'aggregate')).toEqual([]);
  });
});
