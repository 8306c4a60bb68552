import { afterAll, beforeAll, expect, it } from 'vitest';
import { AuditWriter } from '../../src/audit/auditWriter.js';
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
