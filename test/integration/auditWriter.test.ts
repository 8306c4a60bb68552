import { afterAll, beforeAll, expect, it } from 'vitest';
import { AuditWriter } from '../../src/audit/auditWriter.js';
import { encodeRecord } from '../../src/audit/entityCodec.js';
import { INDEX_SHARDS, issuanceIndexKeys } from '../../src/audit/indexKeys.js';
import { ISSUANCE_LANES } from '../../src/audit/issuanceLog.js';
import { issuanceRecordSchema, type IssuanceRecord } from '../../src/audit/issuanceRecord.js';
import { searchIssuances } from '../../src/audit/issuanceSearch.js';
import { ISSUANCE_SHARDS } from '../../src/audit/partitioning.js';
import { encodeProperties } from '../../src/tableBatch.js';
import { jsonLineLogger } from '../../src/logger.js';
import { startAzurite, type Azurite } from '../../src/sandbox/azurite.js';
import { createTableClient } from '../../src/tables.js';

/** The audit writer against real Azurite: batches concurrent records, fails every waiter together. */
let azurite: Azurite;
beforeAll(async () => {
  azurite = await startAzurite();
});
afterAll(() => azurite?.close());

const noCredential = { getToken: async () => null };

function countingClient(table: string) {
  const client = createTableClient({ kind: 'connectionString', value: azurite.connectionString }, table, noCredential);
  let requests = 0;
  const counter: Parameters<typeof client.pipeline.addPolicy>[0] = {
    name: 'count',
    sendRequest: (request, next) => {
      requests += 1;
      return next(request);
    },
  };
  client.pipeline.addPolicy(counter);
  return { client, requests: () => requests };
}

it('writes 250 concurrent records in a handful of transactions, each stored exactly once', async () => {
  const { client, requests } = countingClient('batching');
  const writer = new AuditWriter(client, jsonLineLogger(() => undefined), 'batching', 8);
  const time = new Date();
  await Promise.all(Array.from({ length: 250 }, (_, i) => writer.write(time, `ID${String(i).padStart(6, '0')}`, encodeProperties({ n: i }))));
  const stored: number[] = [];
  for await (const entity of client.listEntities<{ n: number }>()) stored.push(entity.n);
  expect(stored.sort((a, b) => a - b)).toEqual(Array.from({ length: 250 }, (_, i) => i));
  // All 250 are written in one tick: one createTable, eight transactions (a batch is sent once it
  // holds 32 records: 7 × 32 + 26), one listing page.
  expect(requests()).toBe(10);
});

it('rejects every waiting record when its transaction fails', async () => {
  const { client } = countingClient('failing');
  const logs: string[] = [];
  const writer = new AuditWriter(client, jsonLineLogger((line) => logs.push(line)), 'failing', 8);
  const time = new Date();
  // Two records with one row key: Table Storage refuses the whole entity-group transaction.
  const results = await Promise.allSettled([
    writer.write(time, 'A', encodeProperties({ ok: 1 })),
    writer.write(time, 'B', encodeProperties({ ok: 1 })),
    writer.write(time, 'B', encodeProperties({ ok: 2 })),
  ]);
  expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
  expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/audit/);
  expect(logs.some((line) => line.includes('audit write failed'))).toBe(true);
  const stored = [];
  for await (const entity of client.listEntities()) stored.push(entity);
  expect(stored).toHaveLength(0);
});

it('an admin change whose audit record cannot be written is not made (fail closed)', async () => {
  const { AdminAuditLog } = await import('../../src/audit/adminAudit.js');
  const dead = createTableClient({ kind: 'connectionString', value: azurite.connectionString.replace(/:\d+\//, ':9/') }, 'adminaudit', noCredential);
  const log = jsonLineLogger(() => undefined);
  const audit = new AdminAuditLog(new AuditWriter(dead, log, 'adminaudit', 1), dead, log);
  let changed = false;
  const actor = { tenantId: 't', objectId: 'o', appId: undefined, roles: [], tokenVersion: '1.0' as const };
  await expect(
    audit.change({ requestId: 'r', actor, action: 'grant.delete', target: 'g' }, async () => {
      changed = true;
    }),
  ).rejects.toMatchObject({ kind: 'unavailable', code: 'audit-unavailable' });
  expect(changed).toBe(false);
});

it('a batch of 32 callers asking for 32 repositories takes at most eight index transactions, and every record is found under each key', async () => {
  const records = countingClient('mixedrecords');
  const index = countingClient('mixedindex');
  const writer = new AuditWriter(records.client, jsonLineLogger(() => undefined), 'mixed', ISSUANCE_SHARDS, ISSUANCE_LANES, index.client);
  await writer.prepare();
  const before = index.requests();
  const time = new Date();
  const written = Array.from({ length: 32 }, (_, i): IssuanceRecord => {
    const scopes = [`repository:team${i}/app:pull`, `repository:shared/base:pull`];
    return { issuanceId: `01KMIXED${String(i).padStart(18, '0')}`, requestId: `mixed-${i}`, time, outcome: 'issued', reason: 'issued', status: 200, objectId: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, registry: 'docker.io', requestedScopes: scopes, grantedScopes: scopes, grantIds: [], latencyMs: 1, clientIp: '10.0.0.1' };
  });
  await Promise.all(written.map((record) => writer.write(time, record.issuanceId, encodeRecord(issuanceRecordSchema, record), 'issued', { keys: issuanceIndexKeys(record), fields: record })));
  // 65 keys (32 identities, 33 repositories), a partition each before: 65 transactions for 32 records.
  expect(index.requests() - before).toBeLessThanOrEqual(INDEX_SHARDS);
  const search = (filter: { repository?: string; objectId?: string }) =>
    searchIssuances(records.client, { from: new Date(time.getTime() - 1000), to: new Date(time.getTime() + 1000), limit: 100, ...filter }, { table: index.client, since: new Date(time.getTime() - 7200_000), shardedSince: new Date(time.getTime() - 7200_000) });
  expect((await search({ repository: 'shared/base' })).issuances.map((record) => record.issuanceId).sort()).toEqual(written.map((record) => record.issuanceId).sort());
  for (const record of [written[0]!, written[17]!, written[31]!]) {
    expect((await search({ objectId: record.objectId! })).issuances.map((found) => found.issuanceId)).toEqual([record.issuanceId]);
    expect((await search({ repository: record.requestedScopes[0]!.split(':')[1]! })).issuances.map((found) => found.issuanceId)).toEqual([record.issuanceId]);
  }
});
