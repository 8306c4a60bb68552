import { afterAll, beforeAll, expect, it } from 'vitest';
import { jsonLineLogger } from '../../src/logger.js';
import { routes } from '../../src/routes.js';
import { startBrokerHost, type BrokerHost } from '../../src/sandbox/brokerHost.js';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { createServices } from '../../src/services.js';
import { startHarness, type Harness } from '../support/harness.js';
import { credentialWorks, graceMinutes, offsetClock, storedCredential } from '../support/rotation.js';

/**
 * A rotation on one instance while another keeps issuing with the credential it cached. During the
 * grace period the other instance's cached old credential keeps working; its cache refreshes before
 * the grace period is over (the grace outlasts cache, stale window and the longest token), and after
 * the revocation it keeps issuing, with the new credential.
 */
const OTHER_CACHE_MS = 3000;
const clock = offsetClock();
let h: Harness;
let caller: ManagedIdentity;
let other: BrokerHost;
let repo = 0;
const otherLogs: string[] = [];

beforeAll(async () => {
  h = await startHarness({ rotation: 'dockerhub', rotationOverrides: { now: clock.now } });
  caller = h.sandbox.identity('workload');
  await h.grant({ id: 'all', subjects: [{ objectId: caller.objectId }], repositories: ['acme/**'], actions: ['pull'] });
  const log = jsonLineLogger((line) => otherLogs.push(line));
  other = await startBrokerHost(routes, createServices({ ...h.sandbox.config, credentialCacheMs: OTHER_CACHE_MS }, log), log);
});
afterAll(async () => {
  await other?.close();
  await h?.close();
});

/** A token from the other instance: its status, and the Key Vault version its audit record names. */
async function issueAtOther(): Promise<{ status: number; version: unknown }> {
  const response = await fetch(`${other.url}/api/v1/tokens`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${await h.tokenFor(caller)}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ registry: h.sandbox.registry.host, scopes: [`repository:acme/other${++repo}:pull`] }),
  });
  await response.body?.cancel();
  const requestId = response.headers.get('x-request-id');
  const record = (await h.auditRecords()).find((r) => r.requestId === requestId);
  return { status: response.status, version: record?.credentialVersion };
}

it('the other instance issues with its cached old credential during grace, and with the new one after the revocation', async () => {
  const host = h.sandbox.registry.host;
  const old = storedCredential(h);
  let cachedBy = 0;
  const seen: Record<string, { status: number; version: unknown }> = {};
  const engine = h.sandbox.rotationEngine({
    now: clock.now,
    afterStep: async (step) => {
      // Before the switch the other instance caches the old credential; right after it, still holds it.
      if (step === 'verify') {
        seen.beforeSwitch = await issueAtOther();
        cachedBy = Date.now();
      }
      if (step === 'store') seen.afterSwitch = await issueAtOther();
    },
  });
  expect(await engine.rotate(host, { force: true })).toMatchObject({ outcome: 'in-grace' });
  const current = storedCredential(h);
  expect(seen).toEqual({ beforeSwitch: { status: 200, version: old.version }, afterSwitch: { status: 200, version: old.version } });

  // Still in grace, once its cache has run out the other instance reads the new version.
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, cachedBy + OTHER_CACHE_MS + 200 - Date.now())));
  expect(await issueAtOther()).toEqual({ status: 200, version: current.version });

  clock.advanceMinutes(graceMinutes(h) + 1);
  expect(await engine.rotate(host, { force: false })).toMatchObject({ outcome: 'rotated' });
  expect(await credentialWorks(h, old.username, old.password)).toBe(false);
  expect(await issueAtOther()).toEqual({ status: 200, version: current.version });
  expect(otherLogs.filter((line) => line.includes('"level":"error"'))).toEqual([]);
});
