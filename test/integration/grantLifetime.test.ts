import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';

/** Issue 9 L3: a grant ending in 10 s never yields a token that outlives it (the registry's live 300 s). */
let h: Harness;
let caller: ManagedIdentity;

beforeAll(async () => {
  h = await startHarness();
  caller = h.sandbox.identity('ci');
});
afterAll(() => h?.close());

it('refuses a registry token that would outlive the grant\'s notAfter, and issues one that does not', async () => {
  await h.grant({ id: 'ending-soon', subjects: [{ objectId: caller.objectId }], repositories: ['acme/ending'], actions: ['pull'], notAfter: new Date(Date.now() + 10_000).toISOString() });
  const refused = await h.requestToken(caller, ['repository:acme/ending:pull']);
  expect(refused.status).toBe(502);
  expect((await problemOf(refused)).detail).toMatch(/live longer than the \d+ s this grant allows/);

  await h.grant({ id: 'ending-later', subjects: [{ objectId: caller.objectId }], repositories: ['acme/later'], actions: ['pull'], notAfter: new Date(Date.now() + 3600_000).toISOString() });
  const issued = await h.requestToken(caller, ['repository:acme/later:pull']);
  expect(issued.status).toBe(200);
  const { expiresAt } = (await issued.json()) as { expiresAt: string };
  expect(Date.parse(expiresAt)).toBeLessThan(Date.now() + 3600_000);
});
