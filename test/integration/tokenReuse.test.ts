import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { advanceClock, installShiftableClock } from '../support/clock.js';
import { startHarness, type Harness } from '../support/harness.js';

installShiftableClock();

/** Identical scope sets share an upstream token while most of its life remains; each caller is audited. */
let h: Harness;
let a: ManagedIdentity;
let b: ManagedIdentity;
beforeAll(async () => {
  h = await startHarness();
  a = h.sandbox.identity('a');
  b = h.sandbox.identity('b');
  await h.grant({ id: 'both', subjects: [{ objectId: a.objectId }, { objectId: b.objectId }], repositories: ['acme/**'], actions: ['pull', 'push'] });
});
afterAll(() => h?.close());

const tokenOf = async (response: Response) => ((await response.json()) as { token: string; issuanceId: string });

it('reuses the token for the same scope set, mints anew for another, audits every caller', async () => {
  const before = h.sandbox.tokens.requests();
  const first = await tokenOf(await h.requestToken(a, ['repository:acme/web:pull']));
  const second = await tokenOf(await h.requestToken(b, ['repository:acme/web:pull']));
  const other = await tokenOf(await h.requestToken(a, ['repository:acme/web:pull,push']));
  expect(second.token).toBe(first.token);
  expect(other.token).not.toBe(first.token);
  expect(h.sandbox.tokens.requests() - before).toBe(2);
  const records = await h.auditRecords();
  const byId = (id: string) => records.find((r) => r.issuanceId === id);
  expect(byId(first.issuanceId)).toMatchObject({ tokenReused: false });
  expect(byId(second.issuanceId)).toMatchObject({ tokenReused: true, objectId: b.objectId });
  expect(byId(second.issuanceId)?.tokenFingerprint).toBe(byId(first.issuanceId)?.tokenFingerprint);
});

it('concurrent identical requests share one mint', async () => {
  const before = h.sandbox.tokens.requests();
  const responses = await Promise.all(Array.from({ length: 20 }, () => h.requestToken(a, ['repository:acme/burst:pull'])));
  expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
  expect(h.sandbox.tokens.requests() - before).toBe(1);
});

it('reuses a token until half its lifetime has passed, and not a second longer', async () => {
  const scopes = ['repository:acme/half:pull'];
  const first = await tokenOf(await h.requestToken(a, scopes));
  const mints = h.sandbox.tokens.requests();
  // The token server's tokens live 300 s: reused up to 150 s after the mint, minted anew after.
  advanceClock(148_000);
  const beforeHalf = await tokenOf(await h.requestToken(b, scopes));
  expect(beforeHalf.token).toBe(first.token);
  expect(h.sandbox.tokens.requests()).toBe(mints);
  advanceClock(3_000);
  const afterHalf = await tokenOf(await h.requestToken(b, scopes));
  expect(afterHalf.token).not.toBe(first.token);
  expect(h.sandbox.tokens.requests()).toBe(mints + 1);
  const records = await h.auditRecords();
  expect(records.find((r) => r.issuanceId === beforeHalf.issuanceId)).toMatchObject({ tokenReused: true });
  expect(records.find((r) => r.issuanceId === afterHalf.issuanceId)).toMatchObject({ tokenReused: false });
});
