import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';

/**
 * The broker cannot shorten a registry token, so it refuses one that would outlive MAX_TTL_SECONDS
 * or the grant's maxTtlSeconds; what it hands out, it describes with the token's real expiry.
 */
const MAX_TTL_SECONDS = 240;
const GRANT_TTL_SECONDS = 120;
let h: Harness;
let plain: ManagedIdentity;
let capped: ManagedIdentity;

beforeAll(async () => {
  h = await startHarness({ env: { MAX_TTL_SECONDS: String(MAX_TTL_SECONDS) } });
  plain = h.sandbox.identity('plain');
  capped = h.sandbox.identity('capped');
  await h.grant({ id: 'plain', subjects: [{ objectId: plain.objectId }], repositories: ['acme/**'], actions: ['pull'] });
  await h.grant({ id: 'capped', subjects: [{ objectId: capped.objectId }], repositories: ['acme/**'], actions: ['pull'], maxTtlSeconds: GRANT_TTL_SECONDS });
});
afterAll(() => h?.close());

// A fresh repository each time: a pooled token minted under another lifetime is never reused.
let repositories = 0;
async function ask(identity: ManagedIdentity, lifetimeSeconds: number) {
  h.sandbox.tokens.setLifetime(lifetimeSeconds);
  const mints = h.sandbox.tokens.requests();
  const response = await h.requestToken(identity, [`repository:acme/r${++repositories}:pull`]);
  expect(h.sandbox.tokens.requests()).toBe(mints + 1);
  return response;
}

async function expectIssuedWithRealExpiry(response: Response) {
  expect(response.status).toBe(200);
  const body = (await response.json()) as { token: string; expiresAt: string; expiresIn: number; issuanceId: string };
  const exp = decodeJwt(body.token).exp!;
  const told = Date.parse(body.expiresAt) / 1000;
  expect(told).toBeLessThanOrEqual(exp);
  expect(told).toBeGreaterThanOrEqual(exp - 1);
  const left = exp - Date.now() / 1000;
  expect(body.expiresIn).toBeLessThanOrEqual(left);
  expect(body.expiresIn).toBeGreaterThanOrEqual(left - 2);
  const record = (await h.auditRecords()).find((r) => r.issuanceId === body.issuanceId);
  expect(Math.floor(new Date(record!.expiresAt as string).getTime() / 1000)).toBe(told);
}

async function expectRefusedForLifetime(response: Response, capSeconds: number) {
  expect(response.status).toBe(502);
  const problem = await problemOf(response);
  expect(problem).toMatchObject({ type: 'urn:registry-broker:problem:upstream-error', detail: expect.stringContaining(`longer than the ${capSeconds} s this grant allows`) });
  // It says what the registry's tokens live and what an operator can do, so nobody blames the registry.
  expect(problem.detail).toMatch(/\(they live \d+ s; .*the broker cannot shorten them\. An operator can raise the grant's maxTtlSeconds/);
  expect(JSON.stringify(problem)).not.toMatch(/eyJ/);
  const record = (await h.auditRecords()).find((r) => r.requestId === problem.requestId);
  expect(record).toMatchObject({ outcome: 'failed', reason: 'upstream-error', status: 502 });
  expect(record?.tokenFingerprint).toBeUndefined();
}

describe('MAX_TTL_SECONDS', () => {
  it('a token living exactly the cap is handed out, with its real expiry', async () => {
    await expectIssuedWithRealExpiry(await ask(plain, MAX_TTL_SECONDS));
  });

  it('a token living longer than the cap is refused, and not handed out', async () => {
    await expectRefusedForLifetime(await ask(plain, MAX_TTL_SECONDS + 30), MAX_TTL_SECONDS);
  });
});

describe("a grant's maxTtlSeconds", () => {
  it('caps below MAX_TTL_SECONDS: a token the plain grant may have is refused under the capped one', async () => {
    await expectIssuedWithRealExpiry(await ask(plain, GRANT_TTL_SECONDS + 60));
    await expectRefusedForLifetime(await ask(capped, GRANT_TTL_SECONDS + 60), GRANT_TTL_SECONDS);
  });

  it('a token within the grant\'s cap is handed out, with its real expiry', async () => {
    await expectIssuedWithRealExpiry(await ask(capped, GRANT_TTL_SECONDS));
    await expectIssuedWithRealExpiry(await ask(capped, 60));
  });
});
