import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';

/**
 * Refusals on the admin routes are kept as on the token route: tokens that do not authenticate are
 * counted per address and minute and spend the address's one allowance (then 429); a valid token
 * without the admin role is one `access` record in the admin audit.
 */
const ANONYMOUS_RATE = 20;
let h: Harness;
let workload: ManagedIdentity;

beforeAll(async () => {
  h = await startHarness({ env: { ANONYMOUS_RATE_PER_MINUTE: String(ANONYMOUS_RATE) } });
  workload = h.sandbox.identity('not-an-operator');
});
afterAll(() => h?.close());

const admin = (path: string, authorization?: string) => fetch(`${h.sandbox.broker.url}/api/v1/admin${path}`, { headers: authorization ? { Authorization: authorization } : {} });

it('junk tokens on admin routes are counted, not recorded one by one, and throttled with the token route\'s allowance', async () => {
  const statuses: number[] = [];
  for (let i = 0; i < 60; i++) {
    const response = await admin(i % 2 ? '/grants' : '/issuances', i % 3 ? 'Bearer a.b.c' : undefined);
    statuses.push(response.status);
    await response.body?.cancel();
  }
  expect([...new Set(statuses)].sort()).toEqual([401, 429]);
  expect(statuses.filter((status) => status === 401).length).toBeLessThanOrEqual(ANONYMOUS_RATE + 2);
  // One allowance per address: the token route is throttled for it too.
  const token = await fetch(`${h.sandbox.broker.url}/api/v1/tokens`, { method: 'POST', headers: { Authorization: 'Bearer a.b.c' }, body: '{}' });
  expect(token.status).toBe(429);
  expect((await problemOf(token)).type).toBe('urn:registry-broker:problem:anonymous-rate-limited');

  await h.sandbox.services.failedAuthentications.flush({ all: true });
  const aggregates = (await h.auditRecords()).filter((row) => row.requestId === 'aggregate');
  expect(aggregates.length).toBeGreaterThan(0);
  expect(aggregates.length).toBeLessThanOrEqual(6);
  expect(aggregates.reduce((sum, row) => sum + Number(row.count), 0)).toBe(61);
  expect(aggregates.some((row) => row.status === 429 && row.reason === 'anonymous-rate-limited')).toBe(true);
});

it('a valid token without the admin role gets 403, and the admin audit says who tried what', async () => {
  const refused = await admin('/issuances?limit=1', `Bearer ${await h.tokenFor(workload)}`);
  expect(refused.status).toBe(403);
  const { requestId } = await problemOf(refused);
  const audit = await admin('/audit', `Bearer ${await h.tokenFor(h.admin)}`);
  const { entries } = (await audit.json()) as { entries: Record<string, unknown>[] };
  expect(entries.find((entry) => entry.requestId === requestId)).toMatchObject({
    action: 'access',
    target: 'GET /api/v1/admin/issuances',
    outcome: 'refused',
    detail: 'not-admin',
    objectId: workload.objectId,
    appId: workload.clientId,
  });
});
