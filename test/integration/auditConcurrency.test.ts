import { afterAll, beforeAll, expect, it } from 'vitest';
import { ISSUANCE_SHARDS } from '../../src/audit/partitioning.js';
import { startHarness, type Harness } from '../support/harness.js';

/** Concurrent issuances: one durable record each, grouped into entity-group transactions. */
let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h?.close());

it('200 concurrent requests produce 200 records in few partitions, each within the shard set', async () => {
  const workload = h.sandbox.identity('busy');
  await h.grant({ id: 'busy', subjects: [{ objectId: workload.objectId }], repositories: ['acme/**'], actions: ['pull'] });
  const bearer = await h.tokenFor(workload);
  const responses = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      h.post('/v1/tokens', { registry: h.sandbox.registry.host, scopes: [`repository:acme/r${i % 7}:pull`] }, bearer),
    ),
  );
  expect(responses.map((r) => r.status)).toEqual(Array(200).fill(200));
  const ids = await Promise.all(responses.map(async (r) => ((await r.json()) as { issuanceId: string }).issuanceId));
  const records = await h.auditRecords();
  const issued = records.filter((r) => r.outcome === 'issued');
  expect(issued.map((r) => r.issuanceId).sort()).toEqual([...ids].sort());
  const partitions = new Set(issued.map((r) => r.partitionKey));
  for (const key of partitions) expect(key).toMatch(new RegExp(`^\\d{10}-[0-${ISSUANCE_SHARDS - 1}]$`));
  expect(issued.every((r) => /^\d{13}-[0-9A-Z]{26}$/.test(String(r.rowKey)))).toBe(true);
});
