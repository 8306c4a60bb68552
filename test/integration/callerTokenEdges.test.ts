import { randomUUID } from 'node:crypto';
import { generateKeyPair, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedIdentity, MintOptions } from '../../src/sandbox/entraId.js';
import { advanceClock, installShiftableClock } from '../support/clock.js';
import { AUDIENCE, problemOf, startHarness, type Harness } from '../support/harness.js';

/**
 * The edges of caller-token validation: the skew limit to the second, what an accepted token puts in
 * the audit, the key set's refetch and cooldown, Entra rotating and withdrawing keys, and Entra being
 * unreachable. Cooldowns and cache ages are crossed by moving the clock.
 */
installShiftableClock();
const now = () => Math.floor(Date.now() / 1000);
const SECOND_AUDIENCE = randomUUID();
/** Past the JWKS refetch cooldown (30 s) and the key set's maximum age (10 min). */
const COOLDOWN_MS = 31_000;
const KEYSET_MAX_AGE_MS = 10 * 60_000 + 1000;

let h: Harness;
let caller: ManagedIdentity;

beforeAll(async () => {
  h = await startHarness({ env: { BROKER_AUDIENCES: `${AUDIENCE}, ${SECOND_AUDIENCE}`, ANONYMOUS_RATE_PER_MINUTE: '10000' } });
  caller = h.sandbox.identity('workload');
  await h.grant({ id: 'pull-web', subjects: [{ objectId: caller.objectId }], repositories: ['acme/web'], actions: ['pull'] });
});
afterAll(() => h?.close());

const body = () => ({ registry: h.sandbox.registry.host, scopes: ['repository:acme/web:pull'] });
const mint = (options: Partial<MintOptions> = {}) => h.sandbox.entra.mint({ identity: caller, audience: AUDIENCE, ...options });
const ask = (token: string, base?: string) =>
  base === undefined
    ? h.post('/v1/tokens', body(), token)
    : fetch(`${base}/api/v1/tokens`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body()) });

async function expectRefused(response: Response, detail: RegExp) {
  expect(response.status).toBe(401);
  expect(response.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
  const problem = await problemOf(response);
  expect(problem).toMatchObject({ status: 401, type: 'urn:registry-broker:problem:invalid-token', detail: expect.stringMatching(detail) });
  expect(problem).not.toHaveProperty('token');
}

async function issuedRecord(response: Response) {
  expect(response.status).toBe(200);
  const { issuanceId } = (await response.json()) as { issuanceId: string };
  return (await h.auditRecords()).find((record) => record.issuanceId === issuanceId);
}

describe('clock skew: at most 5 minutes', () => {
  it('expired 290 s ago is accepted; 310 s ago is refused', async () => {
    expect((await ask(await mint({ claims: { iat: now() - 3600, nbf: now() - 3600, exp: now() - 290 } }))).status).toBe(200);
    await expectRefused(await ask(await mint({ claims: { iat: now() - 3600, nbf: now() - 3600, exp: now() - 310 } })), /expired/);
  });

  it('valid from 290 s in the future is accepted; 310 s is refused', async () => {
    expect((await ask(await mint({ claims: { nbf: now() + 290 } }))).status).toBe(200);
    await expectRefused(await ask(await mint({ claims: { nbf: now() + 310 } })), /not valid yet/);
  });
});

describe('what an accepted token puts in the audit', () => {
  it('v1: appId from appid, the caller and the outcome of the issued request', async () => {
    const record = await issuedRecord(await ask(await mint({ version: '1.0' })));
    expect(record).toMatchObject({ outcome: 'issued', status: 200, tenantId: h.sandbox.entra.tenantId, objectId: caller.objectId, appId: caller.clientId, grantIds: '["pull-web"]' });
  });

  it('v2: appId from azp', async () => {
    const token = await mint({ version: '2.0' });
    expect(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())).not.toHaveProperty('appid');
    const record = await issuedRecord(await ask(token));
    expect(record).toMatchObject({ outcome: 'issued', tenantId: h.sandbox.entra.tenantId, objectId: caller.objectId, appId: caller.clientId });
  });

  it('upper-case tid and oid are the same caller: the lower-case grant applies and the audit is lower-case', async () => {
    const upper = caller.objectId.toUpperCase();
    const record = await issuedRecord(await ask(await mint({ claims: { tid: h.sandbox.entra.tenantId.toUpperCase(), oid: upper, sub: upper } })));
    expect(record).toMatchObject({ tenantId: h.sandbox.entra.tenantId, objectId: caller.objectId });
  });

  it('the second BROKER_AUDIENCES value (the client ID) is accepted too', async () => {
    const record = await issuedRecord(await ask(await mint({ audience: SECOND_AUDIENCE })));
    expect(record).toMatchObject({ outcome: 'issued', objectId: caller.objectId });
    await expectRefused(await ask(await mint({ audience: `${SECOND_AUDIENCE}x` })), /audience/);
  });
});

describe('required claims', () => {
  it.each([
    ['exp', /"exp"/],
    ['iat', /"iat"/],
    ['tid', /tenant/],
  ])('a token without %s is refused, naming it', async (claim, detail) => {
    await expectRefused(await ask(await mint({ claims: { [claim]: undefined } })), detail);
  });

  it.each([
    ['roles as one string', { roles: 'Broker.Admin' }, /"roles" claim/],
    ['appid as a list', { appid: ['x'] }, /"appid" claim/],
    ['idtyp as a list', { idtyp: ['app'] }, /"idtyp" claim/],
    ['ver as a number', { ver: 1 }, /"ver" claim/],
  ])('a claim of the wrong type (%s) is refused, naming it', async (_what, claims, detail) => {
    await expectRefused(await ask(await mint({ version: '1.0', claims })), detail);
  });

  it.each([
    ['a v1 issuer', '1.0', { ver: '2.0' }],
    ['a v2 issuer', '2.0', { ver: '1.0' }],
    ['a v1 issuer, no ver', '1.0', { ver: undefined }],
    ['a v2 issuer, an unknown ver', '2.0', { ver: '3.0' }],
  ] as const)('a token whose ver does not match its issuer (%s) is refused', async (_what, version, claims) => {
    await expectRefused(await ask(await mint({ version, claims })), /"ver" claim does not match its issuer/);
  });
});

describe('the key set', () => {
  it('an unknown kid refetches the key set exactly once, then the cooldown holds', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const junk = (i: number) => mint({ signWith: { privateKey: privateKey as CryptoKey, kid: `junk-${i}` } });
    expect((await ask(await mint())).status).toBe(200); // the key set is loaded
    advanceClock(COOLDOWN_MS);
    const before = h.sandbox.entra.jwksRequests();
    await expectRefused(await ask(await junk(0)), /unknown key/);
    expect(h.sandbox.entra.jwksRequests() - before).toBe(1);
    for (let i = 1; i <= 10; i++) await expectRefused(await ask(await junk(i)), /unknown key/);
    expect(h.sandbox.entra.jwksRequests() - before).toBe(1);
    advanceClock(COOLDOWN_MS);
    await expectRefused(await ask(await junk(11)), /unknown key/);
    expect(h.sandbox.entra.jwksRequests() - before).toBe(2);
  });

  it('Entra rotates: a token signed with the new key is accepted after one refetch', async () => {
    const oldKid = h.sandbox.entra.publishedKids()[0]!;
    const newKid = await h.sandbox.entra.rotateSigningKey();
    advanceClock(COOLDOWN_MS);
    const before = h.sandbox.entra.jwksRequests();
    const token = await mint();
    expect(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString())).toMatchObject({ kid: newKid });
    expect((await ask(token)).status).toBe(200);
    expect(h.sandbox.entra.jwksRequests() - before).toBe(1);
    // Both keys are published during a rotation: the old key's tokens still work.
    expect((await ask(await mint({ kid: oldKid }))).status).toBe(200);
    expect(h.sandbox.entra.jwksRequests() - before).toBe(1);
  });

  it('a withdrawn key is refused once the key set is refreshed (at most 10 minutes)', async () => {
    const oldKid = h.sandbox.entra.publishedKids().at(-1)!;
    const newKid = await h.sandbox.entra.rotateSigningKey();
    advanceClock(COOLDOWN_MS);
    expect((await ask(await mint({ kid: newKid }))).status).toBe(200);
    h.sandbox.entra.withdrawKey(oldKid);
    // Until the key set is read again, a withdrawn key still verifies (jose caches it up to 10 min).
    advanceClock(KEYSET_MAX_AGE_MS);
    await expectRefused(await ask(await mint({ kid: oldKid })), /unknown key/);
    expect((await ask(await mint({ kid: newKid }))).status).toBe(200);
  });
});

describe('Entra unreachable', () => {
  // Each test gets another broker instance on the same stores that has read nothing from Entra yet.
  const coldInstance = async () => (await h.startInstance()).url;

  const health = async (base: string) => {
    const response = await fetch(`${base}/api/v1/health`);
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  async function expectIdentityProviderDown(response: Response) {
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await problemOf(response)).toMatchObject({ status: 503, type: 'urn:registry-broker:problem:identity-provider-unavailable' });
  }

  it('metadata down: 503 with Retry-After and health names the identity provider; back up, both recover', async () => {
    const cold = await coldInstance();
    h.sandbox.entra.setDown('metadata', 'reset');
    try {
      await expectIdentityProviderDown(await ask(await mint(), cold));
      const report = await health(cold);
      expect(report.status).toBe(503);
      expect(report.body.errors).toEqual([{ path: 'identityProvider', message: expect.any(String) }]);
    } finally {
      h.sandbox.entra.setDown('metadata', false);
    }
    expect((await ask(await mint(), cold)).status).toBe(200);
    expect((await health(cold)).status).toBe(503); // the report is kept for 10 s
    advanceClock(10_000);
    expect(await health(cold)).toMatchObject({ status: 200, body: { status: 'ok', checks: { identityProvider: 'ok' } } });
  });

  it('keys unreachable: 503, not 401; back up, tokens validate', async () => {
    const cold = await coldInstance();
    h.sandbox.entra.setDown('keys', 'reset');
    try {
      await expectIdentityProviderDown(await ask(await mint(), cold));
    } finally {
      h.sandbox.entra.setDown('keys', false);
    }
    expect((await ask(await mint(), cold)).status).toBe(200);
  });
});
