import { createServer, request as forward, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ISSUANCE_SHARDS } from '../../src/audit/partitioning.js';
import { tablesConnectionString } from '../../src/sandbox/azurite.js';
import { startHarness, type Harness } from '../support/harness.js';

/**
 * Concurrent issuances: one durable record each, grouped into entity-group transactions. A counting
 * proxy in front of Azurite shows how many transactions the audit took, and into which partitions.
 */
let h: Harness;
let proxy: Server;
/** Each write the proxy saw, and how many audit records (entities of table `issuances`) it held. */
const writes: { path: string; batch: boolean; records: number }[] = [];

beforeAll(async () => {
  h = await startHarness();
  proxy = createServer((incoming, outgoing) => {
    if (incoming.method === 'POST') {
      const path = incoming.url ?? '';
      const write = { path, batch: path.includes('$batch'), records: /\/issuances(\?|$)/.test(path) ? 1 : 0 };
      writes.push(write);
      let body = '';
      incoming.on('data', (chunk: Buffer) => (body += chunk.toString()));
      incoming.on('end', () => {
        if (write.batch) write.records = body.match(/^POST \S*\/issuances HTTP\/1\.1\r?$/gm)?.length ?? 0;
      });
    }
    const upstream = forward({ host: '127.0.0.1', port: h.sandbox.azurite.port, method: incoming.method, path: incoming.url, headers: incoming.headers }, (answer) => {
      outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(outgoing);
    });
    incoming.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
});
afterAll(async () => {
  await h?.close();
  proxy?.closeAllConnections();
  proxy?.close();
});

it('200 concurrent requests produce 200 records in few transactions and partitions, each in the issued lane', async () => {
  const instance = await h.startInstance({ tables: { kind: 'connectionString', value: tablesConnectionString((proxy.address() as AddressInfo).port) } });
  const workload = h.sandbox.identity('busy');
  await h.grant({ id: 'busy', subjects: [{ objectId: workload.objectId }], repositories: ['acme/**'], actions: ['pull'] });
  const bearer = await h.tokenFor(workload);
  // Warm up (table creation, the grant cache) so that only the audit of the burst is counted: the
  // instance answers that request from the caller's own grants and reads every grant a second later.
  await fetch(`${instance.url}/api/v1/tokens`, { method: 'POST', headers: { Authorization: `Bearer ${bearer}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ registry: h.sandbox.registry.host, scopes: ['repository:acme/warm:pull'] }) });
  await new Promise((resolve) => setTimeout(resolve, 2500));
  writes.length = 0;
  const responses = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      fetch(`${instance.url}/api/v1/tokens`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${bearer}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ registry: h.sandbox.registry.host, scopes: [`repository:acme/r${i % 7}:pull`] }),
      }),
    ),
  );
  expect(responses.map((r) => r.status)).toEqual(Array(200).fill(200));
  const ids = await Promise.all(responses.map(async (r) => ((await r.json()) as { issuanceId: string }).issuanceId));
  const issued = (await h.auditRecords()).filter((r) => ids.includes(String(r.issuanceId)));
  expect(issued.map((r) => r.issuanceId).sort()).toEqual([...ids].sort());
  // Issued records live in the first half of the shards (the issued lane), a few partitions at most.
  const partitions = new Set(issued.map((r) => String(r.partitionKey)));
  expect(partitions.size).toBeLessThanOrEqual(ISSUANCE_SHARDS / 2);
  for (const key of partitions) {
    expect(key).toMatch(/^\d{10}-\d+$/);
    expect(Number(key.split('-')[1])).toBeLessThan(ISSUANCE_SHARDS / 2);
  }
  expect(issued.every((r) => /^\d{13}-[0-9A-Z]{26}$/.test(String(r.rowKey)))).toBe(true);
  // Transactions, not a write per record (which would be 200): a batch lingers while records keep
  // coming (up to 10 ms) and is sent once it holds 32 records, so the next one fills while it is
  // written. At least 7 record writes, about 8 here; fewer than 100 however slow the machine. Each
  // batch also writes its index rows (an identity and up to 7 repositories), before its records.
  const recordWrites = writes.filter((write) => write.records > 0);
  expect(recordWrites.reduce((sum, write) => sum + write.records, 0)).toBe(200);
  expect(Math.max(...recordWrites.map((write) => write.records))).toBeLessThanOrEqual(32);
  expect(recordWrites.length).toBeGreaterThanOrEqual(Math.ceil(200 / 32));
  expect(recordWrites.length).toBeLessThan(100);
});
