import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IssuanceRecord } from '../../src/audit/issuanceRecord.js';
import { searchIssuances } from '../../src/audit/issuanceSearch.js';
import { indexRows, objectIdIndex, repositoryIndex } from '../../src/audit/indexKeys.js';
import { partitionKey, rowKey } from '../../src/audit/partitioning.js';
import { createTableClient } from '../../src/tables.js';
import { startHarness, type Harness } from '../support/harness.js';

/**
 * Issue 15, audit search: searches by repository and identity read index pointers (written before
 * each record, in their own table) for the hours since indexing began, and scan the hours before, so
 * they return every matching record either way — and the indexed hours read key ranges, never every record.
 */
let h: Harness;
const records: IssuanceRecord[] = [];
const END = Date.UTC(2026, 10, 20, 12, 0, 0);
const HOURS = 30;
const SINCE = new Date(END - 20 * 3600_000 + 1234);
/** Around a month's end, so that one search reads two months of the index. */
const MONTH_END = Date.UTC(2026, 11, 1, 0, 0, 0);
const people = ['11111111-1111-1111-1111-111111111111', '22222222-2222-2222-2222-222222222222'];
const repositories = ['acme/web', 'acme/api', 'acme', 'team/a/b'];
let seed = 7;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const pick = <T>(list: T[]) => list[Math.floor(random() * list.length)]!;

beforeAll(async () => {
  h = await startHarness();
  const index = createTableClient(h.sandbox.config.tables, 'issuanceindex', { getToken: async () => null });
  await index.createTable().catch(() => undefined);
  // Indexing "began" 20 h before END: 10 of the 30 hours predate it, and are scanned.
  await index.createEntity({ partitionKey: 'meta', rowKey: 'index-since', since: SINCE });
  for (let i = 0; i < 1500; i++) {
    const time = new Date(i < 1200 ? END - Math.floor(random() * HOURS * 3600_000) : MONTH_END + Math.floor((random() - 0.5) * 12 * 3600_000));
    const scopes = [`repository:${pick(repositories)}:pull`, ...(random() < 0.3 ? [`repository:${pick(repositories)}:push`] : [])];
    records.push({
      issuanceId: `01K${String(i).padStart(23, '0')}`,
      requestId: `seed-${i}`,
      time,
      outcome: 'issued',
      reason: 'issued',
      status: 200,
      objectId: pick(people),
      registry: 'docker.io',
      requestedScopes: scopes,
      grantedScopes: scopes,
      grantIds: [],
      latencyMs: 5,
      clientIp: '10.0.0.1',
    });
  }
  await Promise.all(records.map((record) => h.sandbox.services.issuances.record(record)));
}, 120_000);
afterAll(() => h?.close());

const newestFirst = (a: IssuanceRecord, b: IssuanceRecord) => (rowKey(a.time, a.issuanceId) < rowKey(b.time, b.issuanceId) ? -1 : 1);
const asks = (record: IssuanceRecord, repository: string) => record.requestedScopes.some((scope) => scope.split(':')[1] === repository);

const client = (name: string, seen: string[]) => {
  const table = createTableClient(h.sandbox.config.tables, name, { getToken: async () => null });
  table.pipeline.addPolicy({
    name: 'record-filters',
    sendRequest: (request, next) => {
      seen.push(`${name}: ${new URL(request.url).searchParams.get('$filter') ?? ''}`);
      return next(request);
    },
  });
  return table;
};

async function everything(filter: { repository?: string; objectId?: string }, seen: string[], range = { from: new Date(END - HOURS * 3600_000), to: new Date(END) }, limit = 97) {
  const table = client('issuances', seen);
  const index = { table: client('issuanceindex', seen), since: SINCE };
  const ids: string[] = [];
  let cursor;
  let pages = 0;
  do {
    const page = await searchIssuances(table, { ...range, limit, ...filter, ...(cursor ? { cursor } : {}) }, index);
    ids.push(...page.issuances.map((issuance) => issuance.issuanceId));
    cursor = page.nextCursor ? JSON.parse(Buffer.from(page.nextCursor, 'base64url').toString()) : undefined;
    pages += 1;
  } while (cursor && pages < 200);
  return { ids, pages };
}

describe('searches by repository and identity', () => {
  it.each(['acme/web', 'acme', 'team/a/b'])('by repository %s: every matching record, once, newest first; indexed hours read key ranges', async (repository) => {
    const seen: string[] = [];
    const inRange = (record: IssuanceRecord) => record.time.getTime() <= END;
    const expected = records.filter((record) => inRange(record) && asks(record, repository)).sort(newestFirst).map((record) => record.issuanceId);
    const { ids, pages } = await everything({ repository }, seen);
    expect(ids).toEqual(expected);
    const indexed = seen.filter((filter) => filter.startsWith('issuanceindex: '));
    // One key range of one partition of the month per page (and one more where a page ends at the index's end).
    expect(indexed.length).toBeGreaterThan(0);
    expect(indexed.length).toBeLessThanOrEqual(pages + 1);
    expect(new Set(indexed.map((filter) => /PartitionKey eq '([^']*)'/.exec(filter)?.[1]))).toEqual(new Set([`r|${repository.replaceAll('/', '!')}|202611`]));
    expect(indexed.every((filter) => filter.includes(`RowKey ge 'r|${repository.replaceAll('/', '!')}|`))).toBe(true);
    // Only the hours before indexing began (and the marker's own) are scanned; the others are point reads (no filter).
    const scans = seen.filter((filter) => filter.startsWith('issuances: ') && filter !== 'issuances: ');
    const scanned = new Set(scans.map((filter) => /PartitionKey eq '(\d{10})/.exec(filter)?.[1]));
    expect(scanned.size).toBeLessThanOrEqual(11);
  });

  it('by identity, and by identity and repository together', async () => {
    const inRange = (record: IssuanceRecord) => record.time.getTime() <= END;
    const expected = records.filter((record) => inRange(record) && record.objectId === people[0]).sort(newestFirst).map((record) => record.issuanceId);
    expect((await everything({ objectId: people[0]! }, [])).ids).toEqual(expected);
    const both = records.filter((record) => inRange(record) && record.objectId === people[1] && asks(record, 'acme/api')).sort(newestFirst).map((record) => record.issuanceId);
    expect((await everything({ objectId: people[1]!, repository: 'acme/api' }, [])).ids).toEqual(both);
  });

  it('across a month boundary: both months of the index, every record once, newest first', async () => {
    const seen: string[] = [];
    const range = { from: new Date(MONTH_END - 6 * 3600_000), to: new Date(MONTH_END + 6 * 3600_000) };
    const expected = records.filter((record) => record.time >= range.from && record.time <= range.to && asks(record, 'acme/web')).sort(newestFirst).map((record) => record.issuanceId);
    expect(expected.length).toBeGreaterThan(40);
    expect((await everything({ repository: 'acme/web' }, seen, range, 13)).ids).toEqual(expected);
    const months = new Set(seen.filter((filter) => filter.startsWith('issuanceindex: ')).map((filter) => /PartitionKey eq 'r\|acme!web\|(\d{6})'/.exec(filter)?.[1]));
    expect([...months].sort()).toEqual(['202611', '202612']);
  });

  it('an index row whose records were never stored (their write failed after the index rows) is skipped', async () => {
    const index = createTableClient(h.sandbox.config.tables, 'issuanceindex', { getToken: async () => null });
    const time = new Date(END - 60_000);
    const [ghost] = indexRows(partitionKey(time, 0), [{ time, rowKey: rowKey(time, '01KGHOST0000000000000000000'), keys: [repositoryIndex('acme/ghost')], fields: { outcome: 'issued', registry: 'docker.io', requestId: 'ghost' } }]);
    await index.createEntity(ghost!);
    const table = createTableClient(h.sandbox.config.tables, 'issuances', { getToken: async () => null });
    const page = await searchIssuances(table, { from: new Date(END - 3600_000), to: new Date(END), limit: 10, repository: 'acme/ghost' }, { table: index, since: SINCE });
    expect(page).toEqual({ issuances: [], nextCursor: undefined });
  });

  it('a row of the first index format (one per record, no list) is still found', async () => {
    const index = createTableClient(h.sandbox.config.tables, 'issuanceindex', { getToken: async () => null });
    const record = records.find((candidate) => candidate.time.getTime() < END - 3600_000 && candidate.time.getTime() > SINCE.getTime() + 3600_000)!;
    const stored = (await h.auditRecords()).find((row) => row.issuanceId === record.issuanceId)!;
    const key = repositoryIndex('acme/first-format');
    await index.createEntity({ partitionKey: `${key}|202611`, rowKey: `${key}|${String(stored.rowKey)}`, recordPartition: String(stored.partitionKey), objectId: record.objectId, registry: 'docker.io', outcome: 'issued', requestId: record.requestId });
    const table = createTableClient(h.sandbox.config.tables, 'issuances', { getToken: async () => null });
    const page = await searchIssuances(table, { from: new Date(END - HOURS * 3600_000), to: new Date(END), limit: 10, repository: 'acme/first-format' }, { table: index, since: SINCE });
    expect(page.issuances.map((issuance) => issuance.issuanceId)).toEqual([record.issuanceId]);
  });

  it('a burst of one workload: a few list rows, and paging through seconds that several batches share is exact', async () => {
    const burst = ['33333333-3333-3333-3333-333333333333', '44444444-4444-4444-4444-444444444444'];
    const second = END - 2 * 3600_000 + 500;
    const written: IssuanceRecord[] = [];
    // Three waves, each a batch or two of the writer, all within the same two seconds: their rows interleave.
    for (let wave = 0; wave < 3; wave++) {
      const batch = Array.from({ length: 120 }, (_, i): IssuanceRecord => ({
        issuanceId: `01KBURST${String(wave * 1000 + i).padStart(18, '0')}`,
        requestId: `burst-${wave}-${i}`,
        time: new Date(second + Math.floor(random() * 1500)),
        outcome: 'issued',
        reason: 'issued',
        status: 200,
        objectId: burst[i % 2]!,
        registry: 'docker.io',
        requestedScopes: ['repository:burst/app:pull'],
        grantedScopes: ['repository:burst/app:pull'],
        grantIds: [],
        latencyMs: 5,
        clientIp: '10.0.0.1',
      }));
      await Promise.all(batch.map((record) => h.sandbox.services.issuances.record(record)));
      written.push(...batch);
    }
    records.push(...written);
    const range = { from: new Date(END - 3 * 3600_000), to: new Date(END - 3600_000) };
    expect((await everything({ repository: 'burst/app' }, [], range, 7)).ids).toEqual([...written].sort(newestFirst).map((record) => record.issuanceId));
    const second2 = written.filter((record) => record.objectId === burst[1]).sort(newestFirst).map((record) => record.issuanceId);
    expect((await everything({ repository: 'burst/app', objectId: burst[1]! }, [], range, 11)).ids).toEqual(second2);
    expect((await everything({ objectId: burst[0]! }, [], range, 1000)).ids).toEqual(written.filter((record) => record.objectId === burst[0]).sort(newestFirst).map((record) => record.issuanceId));
    const table = createTableClient(h.sandbox.config.tables, 'issuances', { getToken: async () => null });
    const index = createTableClient(h.sandbox.config.tables, 'issuanceindex', { getToken: async () => null });
    const one = await searchIssuances(table, { ...range, limit: 10, repository: 'burst/app', requestId: 'burst-1-17' }, { table: index, since: SINCE });
    expect(one.issuances.map((issuance) => issuance.issuanceId)).toEqual([written[137]!.issuanceId]);
    // A row per batch, second, identity and key: at most 48 for 360 records (12 batches of at most 32,
    // two seconds, two identities), where a row per record would be 360.
    for (const key of [repositoryIndex('burst/app'), objectIdIndex(burst[0]!)]) {
      let rows = 0;
      for await (const row of index.listEntities({ queryOptions: { filter: `PartitionKey eq '${key}|202611'` } })) if (row.rowKey) rows += 1;
      expect(rows).toBeGreaterThan(0);
      expect(rows).toBeLessThanOrEqual(48);
    }
  });

  it('the audit table holds one entity per record, and a plain time-range search returns each once', async () => {
    expect((await h.auditRecords()).length).toBe(records.length);
    const table = createTableClient(h.sandbox.config.tables, 'issuances', { getToken: async () => null });
    let rows = 0;
    for await (const entity of table.listEntities()) if (entity.partitionKey !== undefined) rows += 1;
    expect(rows).toBe(records.length);
    const page = await searchIssuances(table, { from: new Date(END - 3600_000), to: new Date(END), limit: 1000 });
    const expected = records.filter((record) => record.time.getTime() >= END - 3600_000 && record.time.getTime() <= END);
    expect(page.issuances.map((issuance) => issuance.issuanceId).sort()).toEqual(expected.map((record) => record.issuanceId).sort());
  });
});
