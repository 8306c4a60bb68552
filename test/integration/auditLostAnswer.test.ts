import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AuditWriter } from '../../src/audit/auditWriter.js';
import { encodeProperties } from '../../src/tableBatch.js';
import { jsonLineLogger } from '../../src/logger.js';
import { startAzurite, tablesConnectionString, type Azurite } from '../../src/sandbox/azurite.js';
import { createTableClient } from '../../src/tables.js';

/**
 * Issue 9 L6: a write whose first answer is lost is retried by the Tables SDK and then conflicts with
 * its own row. The record is durable, so the caller must not be told 503 (with its record saying issued).
 */
let azurite: Azurite;
let proxy: Server;
let dropNextWriteAnswer = 0;

beforeAll(async () => {
  azurite = await startAzurite();
  // Forwards to Azurite; for the next write (a POST to the table), lets Azurite store it, then drops the answer.
  proxy = createServer((incoming, outgoing) => {
    const forward = httpRequest({ host: '127.0.0.1', port: azurite.port, method: incoming.method, path: incoming.url, headers: incoming.headers }, (answer) => {
      if (incoming.method === 'POST' && !incoming.url?.includes('Tables') && dropNextWriteAnswer > 0) {
        dropNextWriteAnswer -= 1;
        answer.resume();
        answer.on('end', () => outgoing.socket?.destroy());
        return;
      }
      outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(outgoing);
    });
    incoming.pipe(forward);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
});
afterAll(async () => {
  proxy?.closeAllConnections();
  proxy?.close();
  await azurite?.close();
});

it.each([1, 3])('a batch of %i whose answer was lost is taken as written, once', async (records) => {
  const connection = { kind: 'connectionString' as const, value: tablesConnectionString((proxy.address() as AddressInfo).port) };
  const table = createTableClient(connection, `lost${records}`, { getToken: async () => null });
  const logs: string[] = [];
  const writer = new AuditWriter(table, jsonLineLogger((line) => logs.push(line)), 'audit', 1);
  await table.createTable();
  dropNextWriteAnswer = 1;
  const time = new Date();
  await expect(Promise.all(Array.from({ length: records }, (_, i) => writer.write(time, `01J000000000000000000000${records}${i}`, encodeProperties({ outcome: 'issued' }))))).resolves.toBeDefined();
  expect(dropNextWriteAnswer).toBe(0);
  const stored: unknown[] = [];
  for await (const entity of createTableClient({ kind: 'connectionString', value: azurite.connectionString }, `lost${records}`, { getToken: async () => null }).listEntities()) stored.push(entity);
  expect(stored).toHaveLength(records);
  expect(logs.some((line) => line.includes('already stored'))).toBe(true);
});
