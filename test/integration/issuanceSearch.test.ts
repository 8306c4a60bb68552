import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toEntityFields } from '../../src/audit/entityCodec.js';
import { issuanceRecordSchema, type IssuanceRecord, type Outcome } from '../../src/audit/issuanceRecord.js';
import { searchIssuances } from '../../src/audit/issuanceSearch.js';
import { FULL_BATCH, hourBucket, ISSUANCE_SHARDS, partitionKey, rowKey } from '../../src/audit/partitioning.js';
import { decodeCursor } from '../../src/audit/timeRangeQuery.js';
import { createTableClient } from '../../src/tables.js';
import { startHarness, type Harness } from '../support/harness.js';

/**
 * A few thousand audit records over several days in Azurite, then: range and filter queries return
 * exactly the matching records, newest first; cursor paging visits each once; a one-hour query
 * reads only that hour's partitions.
 */
let h: Harness;
const records: IssuanceRecord[] = [];
const END = Date.UTC(2026, 10, 20, 12, 0, 0);
const DAYS = 4;
const COUNT = 3000;
const people = ['11111111-1111-1111-1111-111111111111', '22222222-2222-2222-2222-222222222222', '33333333-3333-3333-3333-333333333333'];
const registries = ['docker.io', 'ghcr.io'];
const repositories = ['acme/web', 'acme/api', 'acme/base'];
const outcomes: Outcome[] = ['issued', 'issued', 'denied', 'failed'];

// A small deterministic generator, so a failure can be reproduced.
let seed = 42;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const pick = <T>(list: T[]) => list[Math.floor(random() * list.length)]!;

beforeAll(async () => {
  h = await startHarness();
  for (let i = 0; i < COUNT; i++) {
    const time = new Date(END - Math.floor(random() * DAYS * 86_400_000));
    const outcome = pick(outcomes);
    const scope = `repository:${pick(repositories)}:pull`;
    records.push({
      issuanceId: `01J${String(i).padStart(23, '0')}`,
      requestId: `seed-${i}`,
      time,
      outcome,
      reason: outcome === 'issued' ? 'issued' : 'not-granted',
      status: outcome === 'issued' ? 200 : outcome === 'denied' ? 403 : 502,
      tenantId: h.sandbox.entra.tenantId,
      objectId: pick(people),
      registry: pick(registries),
      requestedScopes: [scope],
      grantedScopes: outcome === 'issued' ? [scope] : [],
      grantIds: [],
      latencyMs: 5,
      clientIp: '10.0.0.1',
    });
  }
  for (let i = 0; i < records.length; i += 500) await Promise.all(records.slice(i, i + 500).map((r) => h.sandbox.services.issuances.record(r)));
}, 120_000);
afterAll(() => h?.close());

const newestFirst = (a: IssuanceRecord, b: IssuanceRecord) => (rowKey(a.time, a.issuanceId) < rowKey(b.time, b.issuanceId) ? -1 : 1);

async function api(query: Record<string, string>) {
  const url = `${h.sandbox.broker.url}/api/v1/admin/issuances?${new URLSearchParams(query)}`;
  const response = await fetch(url, { headers: { Authorization: `Bearer ${await h.tokenFor(h.admin)}` } });
  expect(response.status).toBe(200);
  return (await response.json()) as { issuances: { issuanceId: string; time: string; objectId: string }[]; nextCursor?: string };
}

async function all(query: Record<string, string>) {
  const ids: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await api({ ...query, ...(cursor ? { cursor } : {}) });
    ids.push(...page.issuances.map((i) => i.issuanceId));
    cursor = page.nextCursor;
    pages += 1;
  } while (cursor && pages < 500);
  return { ids, pages };
}

describe('range and filters', () => {
  it('a one-day range returns exactly the records of that day, newest first', async () => {
    const from = new Date(END - 2 * 86_400_000);
    const to = new Date(END - 86_400_000);
    const expected = records.filter((r) => r.time >= from && r.time <= to).sort(newestFirst).map((r) => r.issuanceId);
    const { ids } = await all({ from: from.toISOString(), to: to.toISOString(), limit: '1000' });
    expect(expected.length).toBeGreaterThan(500);
    expect(ids).toEqual(expected);
  });

  it.each([
    ['objectId', { objectId: people[1]! }, (r: IssuanceRecord) => r.objectId === people[1]],
    ['registry + outcome', { registry: 'ghcr.io', outcome: 'denied' }, (r: IssuanceRecord) => r.registry === 'ghcr.io' && r.outcome === 'denied'],
    ['repository', { repository: 'acme/api' }, (r: IssuanceRecord) => r.requestedScopes[0]!.includes('acme/api:')],
    ['all filters', { objectId: people[0]!, registry: 'docker.io', repository: 'acme/web', outcome: 'issued' }, (r: IssuanceRecord) =>
      r.objectId === people[0] && r.registry === 'docker.io' && r.requestedScopes[0]!.includes('acme/web:') && r.outcome === 'issued'],
  ])('filter by %s', async (_name, filter, match) => {
    const from = new Date(END - DAYS * 86_400_000);
    const to = new Date(END);
    const expected = records.filter((r) => r.time >= from && r.time <= to && match(r)).sort(newestFirst).map((r) => r.issuanceId);
    const { ids } = await all({ from: from.toISOString(), to: to.toISOString(), limit: '1000', ...filter });
    expect(expected.length).toBeGreaterThan(0);
    expect(ids).toEqual(expected);
  });
});

describe('paging', () => {
  it('visits each record exactly once, in order, across pages of 137', async () => {
    const from = new Date(END - DAYS * 86_400_000);
    const expected = records.sort(newestFirst).map((r) => r.issuanceId);
    const { ids, pages } = await all({ from: from.toISOString(), to: new Date(END).toISOString(), limit: '137' });
    expect(pages).toBeGreaterThanOrEqual(Math.ceil(COUNT / 137));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(expected);
  });
});

describe('partitions read', () => {
  it('a one-hour query reads only that hour\'s partitions', async () => {
    const table = createTableClient(h.sandbox.config.tables, 'issuances', { getToken: async () => null });
    const partitions = new Set<string>();
    table.pipeline.addPolicy({
      name: 'record-partitions',
      sendRequest: (request, next) => {
        const filter = new URL(request.url).searchParams.get('$filter') ?? '';
        for (const match of filter.matchAll(/PartitionKey eq '([^']+)'/g)) partitions.add(match[1]!);
        if (request.method === 'GET' && !filter.includes('PartitionKey eq')) partitions.add('(scan)');
        return next(request);
      },
    });
    const from = new Date(END - 30 * 3600_000);
    const to = new Date(from.getTime() + 3600_000 - 1);
    const page = await searchIssuances(table, { from, to, limit: 1000 });
    const expected = records.filter((r) => r.time >= from && r.time <= to);
    expect(page.issuances).toHaveLength(expected.length);
    expect([...partitions].every((key) => key.startsWith(hourBucket(from)))).toBe(true);
    expect(partitions.size).toBe(ISSUANCE_SHARDS);
  });

  it('a page asks each shard first for its share of the page, and a shard that holds more is read on to the end', async () => {
    const table = createTableClient(h.sandbox.config.tables, 'issuances', { getToken: async () => null });
    const tops: number[] = [];
    table.pipeline.addPolicy({
      name: 'record-page-sizes',
      sendRequest: (request, next) => {
        const top = new URL(request.url).searchParams.get('$top');
        if (request.method === 'GET' && top) tops.push(Number(top));
        return next(request);
      },
    });
    // An hour after the seeded days, all of it in one shard (as an older writer with fewer shards left it).
    const hour = END + 86_400_000;
    const crowded = Array.from({ length: 250 }, (_, i): IssuanceRecord => ({ ...records[i]!, issuanceId: `01K${String(i).padStart(23, '0')}`, requestId: `crowded-${i}`, time: new Date(hour + i * 1000) }));
    for (let i = 0; i < crowded.length; i += 50) {
      await Promise.all(crowded.slice(i, i + 50).map((r) => table.createEntity({ partitionKey: partitionKey(r.time, 3), rowKey: rowKey(r.time, r.issuanceId), ...toEntityFields(issuanceRecordSchema, r) })));
    }
    const ids: string[] = [];
    let cursor: string | undefined;
    do {
      tops.length = 0;
      const page = await searchIssuances(table, { from: new Date(hour), to: new Date(hour + 3600_000 - 1), limit: 100, ...(cursor ? { cursor: decodeCursor(cursor) } : {}) });
      ids.push(...page.issuances.map((issuance) => issuance.issuanceId));
      cursor = page.nextCursor;
      // Every shard's first read: its share of a page of 100 (from half the shards) but at least a
      // writer's full batch, which lands whole in one shard; not the page.
      expect(tops.slice(0, ISSUANCE_SHARDS)).toEqual(Array(ISSUANCE_SHARDS).fill(Math.max(FULL_BATCH, Math.ceil(200 / ISSUANCE_SHARDS)) + 1));
      expect(Math.max(...tops)).toBe(101);
    } while (cursor);
    expect(ids).toEqual([...crowded].sort(newestFirst).map((r) => r.issuanceId));

    // A repository is matched here, not by Table Storage: most of what is read is dropped, so every
    // shard reads a whole page from the start.
    tops.length = 0;
    const web = await searchIssuances(table, { from: new Date(hour), to: new Date(hour + 3600_000 - 1), limit: 100, repository: 'acme/web' });
    expect(tops.slice(0, ISSUANCE_SHARDS)).toEqual(Array(ISSUANCE_SHARDS).fill(101));
    expect(web.issuances.map((issuance) => issuance.issuanceId)).toEqual(
      [...crowded].filter((r) => r.requestedScopes[0] === 'repository:acme/web:pull').sort(newestFirst).map((r) => r.issuanceId),
    );
  });
});

describe('bad queries', () => {
  it.each([
    ['a range over 31 days', { from: '2026-01-01T00:00:00Z', to: '2026-03-01T00:00:00Z' }],
    ['from after to', { from: '2026-03-01T00:00:00Z', to: '2026-01-01T00:00:00Z' }],
    ['limit over 1000', { limit: '1001' }],
    ['an unknown outcome', { outcome: 'maybe' }],
    ['a bad object id', { objectId: 'someone' }],
    ['an unknown parameter', { who: 'me' }],
    ['a forged cursor', { cursor: 'eyJoIjoiMSJ9' }],
  ])('%s is 400', async (_name, query) => {
    const response = await fetch(`${h.sandbox.broker.url}/api/v1/admin/issuances?${new URLSearchParams(query)}`, {
      headers: { Authorization: `Bearer ${await h.tokenFor(h.admin)}` },
    });
    expect(response.status).toBe(400);
  });
});
