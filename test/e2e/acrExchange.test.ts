import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { problemOf, startHarness, type Harness } from '../support/harness.js';
import { e2eAvailable } from '../support/skopeo.js';

/**
 * The broker's Entra token for ACR has the wrong audience (a misconfigured identity endpoint): the
 * ACR-style /oauth2/exchange refuses it and the caller gets a 502 that says where and why. Its own
 * file: MSAL caches the broker's token per process, so the bad token must be the first one fetched.
 */
describe.skipIf(!e2eAvailable())('ACR exchange refused', () => {
  let h: Harness;
beforeAll(async () => {
  h = await startHarness({ acr: true });
});
afterAll(() => h?.close());

it('answers 502 naming /oauth2/exchange, and audits the failure', async () => {
  const caller = h.sandbox.identity('acr-caller');
  const acrHost = h.sandbox.acr!.host;
  await h.grant({ id: 'acr', registry: acrHost, subjects: [{ objectId: caller.objectId }], repositories: ['team/app'], actions: ['pull'] });
  h.sandbox.entra.setBrokerAudienceOverride('https://management.azure.com');
  const response = await h.requestToken(caller, ['repository:team/app:pull'], acrHost);
  expect(response.status).toBe(502);
  const problem = await problemOf(response);
  expect(problem.type).toBe('urn:registry-broker:problem:upstream-refused');
  expect(problem.detail).toMatch(/refused the broker's Entra token at \/oauth2\/exchange/);
  expect(problem.detail).toMatch(/containerregistry\.azure\.net/);
  const record = (await h.auditRecords()).find((r) => r.requestId === problem.requestId);
  expect(record).toMatchObject({ outcome: 'failed', reason: 'upstream-refused', status: 502, registry: acrHost });
});
});
