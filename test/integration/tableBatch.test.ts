import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TableClient } from '@azure/data-tables';
import { startAzurite, type Azurite } from '../../src/sandbox/azurite.js';
import { fromEntity, encodeRecord, toEntityFields } from '../../src/audit/entityCodec.js';
import { issuanceRecordSchema, type IssuanceRecord } from '../../src/audit/issuanceRecord.js';
import { createInTransaction, createOne, encodeEntity } from '../../src/tableBatch.js';
import { createTableClient } from '../../src/tables.js';

/** The lean transaction and single-entity bodies against Azurite: stored as the SDK stores them, all or nothing, refusals as RestErrors. */
let azurite: Azurite;
let table: TableClient;

beforeAll(async () => {
  azurite = await startAzurite();
  table = createTableClient({ kind: 'connectionString', value: azurite.connectionString }, 'batches', { getToken: async () => null });
  await table.createTable();
});
afterAll(async () => {
  await azurite?.close();
});

const fields = { text: 'a "quoted" ü\n line', count: 12, ratio: 1.5, flag: false, at: new Date('2026-12-01T10:00:00.123Z'), list: '["x","y"]' };

it('stores every entity with the types the SDK would give it', async () => {
  await createInTransaction(table, [1, 2, 3].map((i) => encodeEntity({ partitionKey: 'p1', rowKey: `r${i}`, ...fields })), AbortSignal.timeout(5000));
  await table.submitTransaction([['create', { partitionKey: 'p1', rowKey: 'sdk', ...fields }]]);
  const stored = await table.getEntity<typeof fields>('p1', 'r2');
  const bySdk = await table.getEntity<typeof fields>('p1', 'sdk');
  for (const name of Object.keys(fields) as (keyof typeof fields)[]) expect(stored[name]).toEqual(bySdk[name]);
  expect(stored.at).toEqual(fields.at);
  const all: unknown[] = [];
  for await (const entity of table.listEntities({ queryOptions: { filter: "PartitionKey eq 'p1'" } })) all.push(entity);
  expect(all).toHaveLength(4);
});

it('stores nothing of a transaction that one entity spoils, and says 409', async () => {
  await createInTransaction(table, [encodeEntity({ partitionKey: 'p2', rowKey: 'taken', ...fields })], AbortSignal.timeout(5000));
  const attempt = createInTransaction(table, ['fresh-1', 'taken', 'fresh-2'].map((rowKey) => encodeEntity({ partitionKey: 'p2', rowKey, ...fields })), AbortSignal.timeout(5000));
  await expect(attempt).rejects.toMatchObject({ statusCode: 409 });
  const rows: string[] = [];
  for await (const entity of table.listEntities({ queryOptions: { filter: "PartitionKey eq 'p2'" } })) rows.push(entity.rowKey!);
  expect(rows).toEqual(['taken']);
});

it('refuses entities of two partitions before sending anything', async () => {
  const mixed = createInTransaction(table, [encodeEntity({ partitionKey: 'p3', rowKey: 'a' }), encodeEntity({ partitionKey: 'p4', rowKey: 'b' })], AbortSignal.timeout(5000));
  await expect(mixed).rejects.toThrow(/one partition key/);
  const rows: unknown[] = [];
  for await (const entity of table.listEntities({ queryOptions: { filter: "PartitionKey eq 'p3' or PartitionKey eq 'p4'" } })) rows.push(entity);
  expect(rows).toEqual([]);
});

it('stores one entity with the types the SDK would give it, and says 409 for a row already there', async () => {
  await createOne(table, encodeEntity({ partitionKey: 'p5', rowKey: 'one', ...fields }), AbortSignal.timeout(5000));
  await table.createEntity({ partitionKey: 'p5', rowKey: 'sdk', ...fields });
  const stored = await table.getEntity<typeof fields>('p5', 'one');
  const bySdk = await table.getEntity<typeof fields>('p5', 'sdk');
  for (const name of Object.keys(fields) as (keyof typeof fields)[]) expect(stored[name]).toEqual(bySdk[name]);
  expect(stored.at).toEqual(fields.at);
  await expect(createOne(table, encodeEntity({ partitionKey: 'p5', rowKey: 'one', text: 'again' }), AbortSignal.timeout(5000))).rejects.toMatchObject({ statusCode: 409, code: 'EntityAlreadyExists' });
  expect((await table.getEntity<typeof fields>('p5', 'one')).text).toBe(fields.text);
});

it('a single entity for a table that is not there is a 404 RestError', async () => {
  const missing = createTableClient({ kind: 'connectionString', value: azurite.connectionString }, 'nosuchtable', { getToken: async () => null });
  await expect(createOne(missing, encodeEntity({ partitionKey: 'p', rowKey: 'r' }), AbortSignal.timeout(5000))).rejects.toMatchObject({ statusCode: 404 });
});

it('stores an issuance record encoded once as the SDK stores its fields, and reads it back whole', async () => {
  const record: IssuanceRecord = {
    issuanceId: '01JDEF0123456789ABCDEFGHJK',
    requestId: 'req "one" ü\u2028',
    time: new Date('2026-12-01T10:00:00.123Z'),
    outcome: 'issued',
    reason: 'issued',
    status: 200,
    tenantId: 't',
    objectId: 'o',
    appId: 'a',
    registry: 'docker.io',
    requestedScopes: ['repository:acme/web:pull,push', 'repository:acme/"odd":pull'],
    grantedScopes: ['repository:acme/web:pull,push'],
    grantIds: ['g1', 'g2'],
    expiresAt: new Date('2026-12-01T10:05:00.000Z'),
    latencyMs: 1.25,
    clientIp: '10.0.0.1',
    tokenFingerprint: '0123456789abcdef',
    tokenReused: false,
    credentialVersion: 'v1',
    upstreamScope: 'verified',
    form: 'token',
    count: 3,
  };
  await createOne(table, { partitionKey: 'p6', rowKey: 'encoded', properties: encodeRecord(issuanceRecordSchema, record) }, AbortSignal.timeout(5000));
  await table.createEntity({ partitionKey: 'p6', rowKey: 'sdk', ...toEntityFields(issuanceRecordSchema, record) });
  const stored = await table.getEntity<Record<string, unknown>>('p6', 'encoded');
  const bySdk = await table.getEntity<Record<string, unknown>>('p6', 'sdk');
  const { etag: _etag, rowKey: _rowKey, timestamp: _timestamp, ...properties } = stored;
  const { etag: _sdkEtag, rowKey: _sdkRowKey, timestamp: _sdkTimestamp, ...sdkProperties } = bySdk;
  expect(properties).toEqual(sdkProperties);
  expect(fromEntity(issuanceRecordSchema, stored)).toEqual(record);
});
