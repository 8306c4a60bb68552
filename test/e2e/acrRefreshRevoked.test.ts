import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { startHarness, type Harness } from '../support/harness.js';
import { e2eAvailable } from '../support/skopeo.js';

/**
 * ACR: a cached refresh token the registry no longer accepts (revoked) costs the caller nothing: the
 * same request exchanges the broker's Entra token once more and is issued.
 */
let h: Harness;
let pusher: ManagedIdentity;
const acrHost = () => h.sandbox.acr!.host;

beforeAll(async () => {
  if (!e2eAvailable()) return;
  h = await startHarness({ acr: true });
  pusher = h.sandbox.identity('acr-pusher');
  await h.grant({ id: 'acr-push', registry: acrHost(), subjects: [{ objectId: pusher.objectId }], repositories: ['team/**'], actions: ['pull', 'push'] });
});
afterAll(() => h?.close());

it.skipIf(!e2eAvailable())('a revoked refresh token causes exactly one fresh exchange, within the same request', async () => {
  expect((await h.requestToken(pusher, ['repository:team/app:pull'], acrHost())).status).toBe(200);
  expect(h.sandbox.tokens.acrExchanges()).toBe(1);
  h.sandbox.tokens.revokeAcrRefreshTokens();
  const response = await h.requestToken(pusher, ['repository:team/other:pull'], acrHost());
  expect(response.status).toBe(200);
  expect(h.sandbox.tokens.acrExchanges()).toBe(2);
  expect((await h.requestToken(pusher, ['repository:team/third:pull'], acrHost())).status).toBe(200);
  expect(h.sandbox.tokens.acrExchanges()).toBe(2);
});
