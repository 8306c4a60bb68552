import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { startHarness, type Harness } from '../support/harness.js';
import { credentialWorks, graceMinutes, offsetClock, storedCredential } from '../support/rotation.js';

/**
 * ACR repository-scoped token passwords, rotated through ARM generateCredentials with the broker's
 * managed identity: slots alternate, the old password works through the grace period, then dies.
 */
const clock = offsetClock();
let h: Harness;
let caller: ManagedIdentity;
let host: string;
let repo = 0;

beforeAll(async () => {
  h = await startHarness({ rotation: 'acr-token', rotationOverrides: { now: clock.now } });
  host = h.sandbox.registry.host;
  caller = h.sandbox.identity('workload');
  await h.grant({ id: 'all', subjects: [{ objectId: caller.objectId }], repositories: ['acme/**'], actions: ['pull'] });
});
afterAll(() => h?.close());

const issue = () => h.requestToken(caller, [`repository:acme/r${++repo}:pull`]);

it('202 then failure: recorded, the old password keeps working, retried later', async () => {
  const before = storedCredential(h);
  h.sandbox.arm!.setAsynchronous('fail');
  const failed = await h.sandbox.services.rotation.rotate(host, { force: true });
  expect(failed.outcome).toBe('failed');
  expect(failed.detail).toMatch(/Failed/);
  expect(storedCredential(h).version).toBe(before.version);
  expect(await credentialWorks(h, before.username, before.password)).toBe(true);
  expect((await issue()).status).toBe(200);

  h.sandbox.arm!.setAsynchronous('succeed');
  expect((await h.sandbox.services.rotation.runDue())[0]).toMatchObject({ outcome: 'backing-off' });
  clock.advanceMinutes(16);
  // The failed attempt regenerated password2 and threw it away; the resumed one does so again.
  expect((await h.sandbox.services.rotation.runDue())[0]).toMatchObject({ outcome: 'in-grace' });
});

it('alternates slots: the old password works during grace and is dead after it', async () => {
  h.sandbox.arm!.setAsynchronous('off');
  const previous = h.sandbox.keyVault.versions('sandbox-registry').at(-2)!;
  const old = JSON.parse(previous.value) as { username: string; password: string };
  const current = storedCredential(h);
  expect(previous.tags.credentialRef).toBe('password1');
  expect(current.tags.credentialRef).toBe('password2');
  expect(await credentialWorks(h, old.username, old.password)).toBe(true);
  expect(await credentialWorks(h, current.username, current.password)).toBe(true);
  expect((await issue()).status).toBe(200);

  clock.advanceMinutes(graceMinutes(h) + 1);
  expect((await h.sandbox.services.rotation.runDue())[0]).toMatchObject({ outcome: 'rotated', step: 'idle' });
  expect(await credentialWorks(h, old.username, old.password)).toBe(false);
  expect(await credentialWorks(h, current.username, current.password)).toBe(true);
  expect((await issue()).status).toBe(200);
});

it('the next rotation goes back to password1', async () => {
  const report = await h.sandbox.services.rotation.rotate(host, { force: true });
  expect(report.outcome).toBe('in-grace');
  expect(storedCredential(h).tags.credentialRef).toBe('password1');
});

it('refuses to rotate when it cannot tell which slot is in use, and kills nothing', async () => {
  clock.advanceMinutes(graceMinutes(h) + 1);
  await h.sandbox.services.rotation.runDue();
  const current = storedCredential(h);
  h.sandbox.keyVault.update('sandbox-registry', current.version, { tags: {} });
  const slots = h.sandbox.arm!.slots();
  const failed = await h.sandbox.services.rotation.rotate(host, { force: true });
  expect(failed.outcome).toBe('failed');
  expect(failed.detail).toMatch(/credentialRef/);
  expect(h.sandbox.arm!.slots()).toEqual(slots);
  expect(await credentialWorks(h, current.username, current.password)).toBe(true);
});
