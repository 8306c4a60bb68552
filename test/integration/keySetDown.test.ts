import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { advanceClock, installShiftableClock } from '../support/clock.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';

/** Entra's key set answering 5xx is Entra being down (503), not the caller's token being bad (401). */
let h: Harness;
let caller: ManagedIdentity;

beforeAll(async () => {
  installShiftableClock();
  h = await startHarness();
  caller = h.sandbox.identity('ci');
  await h.grant({ id: 'pull-web', subjects: [{ objectId: caller.objectId }], repositories: ['acme/web'], actions: ['pull'] });
});
afterAll(() => h?.close());

it('answers 503 identity-provider-unavailable with Retry-After while the key set answers 500, then issues once it is back', async () => {
  // A token signed with a key the broker has not seen makes it read the key set again (past the cooldown).
  const kid = await h.sandbox.entra.rotateSigningKey();
  advanceClock(31_000);
  h.sandbox.entra.setDown('keys', 500);
  const token = await h.sandbox.entra.mint({ identity: caller, audience: 'api://registry-broker', kid });
  const down = await h.post('/v1/tokens', { registry: h.sandbox.registry.host, scopes: ['repository:acme/web:pull'] }, token);
  expect(down.status).toBe(503);
  expect(down.headers.get('retry-after')).toBeTruthy();
  expect(await problemOf(down)).toMatchObject({ type: 'urn:registry-broker:problem:identity-provider-unavailable' });
  h.sandbox.entra.setDown('keys', false);
  advanceClock(31_000);
  expect((await h.post('/v1/tokens', { registry: h.sandbox.registry.host, scopes: ['repository:acme/web:pull'] }, token)).status).toBe(200);
});
