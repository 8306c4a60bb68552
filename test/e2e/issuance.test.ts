import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { advanceClock, installShiftableClock } from '../support/clock.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';
import { writeOciImage } from '../support/ociImage.js';
import { e2eAvailable, pull, push } from '../support/skopeo.js';

/**
 * The product promise, end to end: the real docker-registry enforces exactly the scope the broker
 * granted, as seen by skopeo. Every /v1/tokens request made here is tracked, and at the end the
 * audit table must hold exactly one record for each, with no secret anywhere in it or in the logs.
 */
installShiftableClock();
describe.skipIf(!e2eAvailable())('token issuance against the real registry', () => {
  let h: Harness;
  let image: string;
  let pusher: ManagedIdentity;
  let puller: ManagedIdentity;
  let otherPusher: ManagedIdentity;
  let stranger: ManagedIdentity;
  const requestIds: string[] = [];
  const issuedTokens: string[] = [];
  const answers = new Map<string, { token: string; expiresAt: string }>();

  async function requestToken(identity: ManagedIdentity, scopes: string[]): Promise<Response> {
    const response = await h.requestToken(identity, scopes);
    requestIds.push(response.headers.get('x-request-id')!);
    return response;
  }

  async function tokenFor(identity: ManagedIdentity, scopes: string[]): Promise<string> {
    const response = await requestToken(identity, scopes);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { token: string; expiresAt: string; expiresIn: number; issuanceId: string };
    issuedTokens.push(body.token);
    answers.set(body.issuanceId, body);
    // The expiry the caller is told is the token's own `exp`: never later, and at most the
    // second the broker's clock and the token server's fell into apart.
    const exp = decodeJwt(body.token).exp!;
    const told = Date.parse(body.expiresAt) / 1000;
    expect(told).toBeLessThanOrEqual(exp);
    expect(told).toBeGreaterThanOrEqual(exp - 1);
    expect(body.expiresIn).toBeLessThanOrEqual(exp - Date.now() / 1000);
    expect(body.expiresIn).toBeGreaterThanOrEqual(exp - Date.now() / 1000 - 2);
    return body.token;
  }

  const ref = (repository: string, tag = 'v1') => `${h.sandbox.registry.host}/${repository}:${tag}`;

  beforeAll(async () => {
    h = await startHarness();
    image = await writeOciImage('e2e');
    pusher = h.sandbox.identity('pusher');
    puller = h.sandbox.identity('puller');
    otherPusher = h.sandbox.identity('other-pusher');
    stranger = h.sandbox.identity('stranger');
    await h.grant({ id: 'push-web', subjects: [{ objectId: pusher.objectId }], repositories: ['acme/web'], actions: ['pull', 'push'] });
    await h.grant({ id: 'pull-web', subjects: [{ objectId: puller.objectId }], repositories: ['acme/web'], actions: ['pull'] });
    await h.grant({ id: 'push-other', subjects: [{ objectId: otherPusher.objectId }], repositories: ['acme/other'], actions: ['pull', 'push'] });
  });
  afterAll(() => h?.close());

  it('a caller granted pull,push on acme/web pushes and pulls with its token', async () => {
    const token = await tokenFor(pusher, ['repository:acme/web:pull,push']);
    const pushed = await push(image, ref('acme/web'), token);
    expect(pushed.output).not.toMatch(/denied|unauthorized/);
    expect(pushed.code).toBe(0);
    const pulled = await pull(ref('acme/web'), token);
    expect(pulled.code).toBe(0);
  });

  it('a pull-only caller can pull, but the registry refuses its push', async () => {
    const token = await tokenFor(puller, ['repository:acme/web:pull']);
    expect((await pull(ref('acme/web'), token)).code).toBe(0);
    const refused = await push(image, ref('acme/web', 'v2'), token);
    expect(refused.code).not.toBe(0);
    expect(refused.output).toMatch(/denied|unauthorized|authentication required/i);
  });

  it('a pull-only caller asking for push gets 403 naming the missing action, and no token', async () => {
    const response = await requestToken(puller, ['repository:acme/web:pull,push']);
    expect(response.status).toBe(403);
    const problem = await problemOf(response);
    expect(problem.detail).toContain('repository:acme/web:push');
    expect(problem).not.toHaveProperty('token');
  });

  it('a token for acme/web cannot read or write acme/other', async () => {
    const otherToken = await tokenFor(otherPusher, ['repository:acme/other:pull,push']);
    expect((await push(image, ref('acme/other'), otherToken)).code).toBe(0);
    const webToken = await tokenFor(pusher, ['repository:acme/web:pull,push']);
    const read = await pull(ref('acme/other'), webToken);
    expect(read.code).not.toBe(0);
    expect(read.output).toMatch(/denied|unauthorized|authentication required/i);
    const write = await push(image, ref('acme/other', 'v9'), webToken);
    expect(write.code).not.toBe(0);
  });

  it('a caller with no grant gets 403 and no token', async () => {
    const response = await requestToken(stranger, ['repository:acme/web:pull']);
    expect(response.status).toBe(403);
    const problem = await problemOf(response);
    expect(problem.type).toBe('urn:registry-broker:problem:not-granted');
    expect(JSON.stringify(problem)).not.toMatch(/eyJ/);
  });

  it('a token stops working once it has expired: the registry refuses it', async () => {
    // Minted two minutes in the past (this process's clock; the registry keeps real time) for 30 s:
    // expired for 90 s by the registry's clock, past its 60 s leeway.
    // A caller of its own: the broker's per-caller rate limit does not take a clock stepping back well.
    const late = h.sandbox.identity('late');
    await h.grant({ id: 'late', subjects: [{ objectId: late.objectId }], repositories: ['acme/web', 'acme/late'], actions: ['pull'] });
    const scopes = ['repository:acme/late:pull', 'repository:acme/web:pull'];
    h.sandbox.tokens.setLifetime(30);
    advanceClock(-120_000);
    let expired: string;
    try {
      expired = await tokenFor(late, scopes);
    } finally {
      advanceClock(120_000);
      h.sandbox.tokens.setLifetime(300);
    }
    const refused = await pull(ref('acme/web'), expired);
    expect(refused.code).not.toBe(0);
    expect(refused.output).toMatch(/unauthorized|authentication required/i);
    expect((await pull(ref('acme/web'), await tokenFor(late, scopes))).code).toBe(0);
  });

  it('the audit table holds exactly one record per request, with the fields of an issuance record', async () => {
    const records = await h.auditRecords();
    expect(records.map((r) => r.requestId).sort()).toEqual([...requestIds].sort());
    const issued = records.filter((r) => r.outcome === 'issued');
    expect(issued).toHaveLength(issuedTokens.length);
    for (const record of issued) {
      expect(record).toMatchObject({ tenantId: h.sandbox.entra.tenantId, registry: h.sandbox.registry.host, status: 200, reason: 'issued' });
      expect(record.objectId).toMatch(/^[0-9a-f-]{36}$/);
      expect(record.appId).toMatch(/^[0-9a-f-]{36}$/);
      expect(record.tokenFingerprint).toMatch(/^[0-9a-f]{16}$/);
      expect(JSON.parse(String(record.grantedScopes))).toEqual(JSON.parse(String(record.requestedScopes)));
      expect(JSON.parse(String(record.grantIds)).length).toBeGreaterThan(0);
      // The audit holds the expiry the caller was told, to the second.
      const answer = answers.get(String(record.issuanceId))!;
      expect(Math.floor(new Date(record.expiresAt as string | Date).getTime() / 1000)).toBe(Date.parse(answer.expiresAt) / 1000);
      expect(typeof record.latencyMs).toBe('number');
      expect(record.clientIp).toMatch(/127\.0\.0\.1/);
      expect(record.credentialVersion).toMatch(/^[0-9a-f]{32}$/);
    }
    const denied = records.filter((r) => r.outcome === 'denied');
    expect(denied.map((r) => r.reason)).toEqual(['not-granted', 'not-granted']);
    expect(denied.every((r) => r.status === 403 && r.tokenFingerprint === undefined)).toBe(true);
  });

  it('no issued token and no stored password appears in any audit record or log line', async () => {
    const secrets = [...issuedTokens, h.sandbox.registryPassword];
    expect(issuedTokens.length).toBeGreaterThan(0);
    const haystacks = [...(await h.auditRecords()).map((record) => JSON.stringify(record)), ...h.logs];
    for (const secret of secrets) {
      for (const haystack of haystacks) expect(haystack.includes(secret)).toBe(false);
      // Nor any recognisable piece of it (a JWT's signature part, half a password).
      const piece = secret.includes('.') ? secret.split('.')[2]! : secret.slice(0, secret.length / 2);
      for (const haystack of haystacks) expect(haystack.includes(piece)).toBe(false);
    }
  });
});
