import { afterAll, beforeAll, expect, it } from 'vitest';
import { problemOf, startHarness, type Harness } from '../support/harness.js';

/**
 * One workload asking too often gets 429 with Retry-After, audited; others are unaffected. Its own
 * file: MSAL keeps the broker's tokens per process, so one sandbox per file.
 */
let limited: Harness;
beforeAll(async () => {
  limited = await startHarness({ env: { CALLER_RATE_PER_MINUTE: '3' } });
});
afterAll(() => limited?.close());

it('past CALLER_RATE_PER_MINUTE an identity gets 429 with Retry-After, audited; others are unaffected', async () => {
  const busy = limited.sandbox.identity('busy');
  const calm = limited.sandbox.identity('calm');
  await limited.grant({ id: 'all', subjects: [{ objectId: busy.objectId }, { objectId: calm.objectId }], repositories: ['acme/**'], actions: ['pull'] });
  const statuses: number[] = [];
  let last: Response | undefined;
  for (let i = 0; i < 4; i++) {
    last = await limited.requestToken(busy, ['repository:acme/web:pull']);
    statuses.push(last.status);
  }
  expect(statuses).toEqual([200, 200, 200, 429]);
  expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
  const problem = await problemOf(last!);
  const record = (await limited.auditRecords()).find((r) => r.requestId === problem.requestId);
  expect(record).toMatchObject({ outcome: 'denied', reason: 'rate-limited', status: 429, objectId: busy.objectId });
  expect((await limited.requestToken(calm, ['repository:acme/web:pull'])).status).toBe(200);
});
