import type { TableClient } from '@azure/data-tables';
import { azureStatus, errors } from '../errors.js';
import { parseScope } from '../registries/scope.js';
import { fromEntity, listField } from './entityCodec.js';
import { indexPartition, listedRecords, objectIdIndex, repositoryIndex, secondOf, type IndexMarker } from './indexKeys.js';
import { issuanceRecordSchema, type IssuanceRecord, type Outcome } from './issuanceRecord.js';
import { hourBucket, invertedTime, ISSUANCE_SHARDS, monthBucketsBetween } from './partitioning.js';
import { encodeCursor, odataString, queryTimeRange, type Cursor, type Entity } from './timeRangeQuery.js';

export interface IssuanceFilter {
  from: Date;
  to: Date;
  objectId?: string;
  registry?: string;
  repository?: string;
  outcome?: Outcome;
  requestId?: string;
  limit: number;
  cursor?: Cursor;
}

type Page = { issuances: IssuanceRecord[]; nextCursor: string | undefined };

/** Records read by key at once: a page of 1,000 is read in about 16 rounds, not 1,000. */
const RECORD_READS_IN_FLIGHT = 64;
/** The most entities Table Storage returns in one response. */
const MAX_PAGE = 1000;

/**
 * "Who got push on acme/web last Tuesday?": the issuances table, newest first. A search by
 * repository or identity reads that key's index rows (indexKeys.ts), one key range a month, for the
 * time since indexing began, then the records they list; it scans the records of the hours
 * before, so it never misses one.
 */
export class IssuanceSearch {
  constructor(
    private readonly table: TableClient,
    private readonly indexTable: TableClient,
    private readonly marker: IndexMarker,
  ) {}

  async search(filter: IssuanceFilter): Promise<Page> {
    try {
      const index = filter.repository || filter.objectId ? { table: this.indexTable, since: await this.marker.since() } : undefined;
      return await searchIssuances(this.table, filter, index);
    } catch (error) {
      // A deployment that has issued nothing yet has no audit table: nothing to find, not an outage.
      if (azureStatus(error) === 404) return { issuances: [], nextCursor: undefined };
      throw errors.dependencyDown('audit', 'The issuance audit table (Table Storage) is unavailable.');
    }
  }
}

export async function searchIssuances(table: TableClient, filter: IssuanceFilter, index?: { table: TableClient; since: Date | undefined }): Promise<Page> {
  const byObjectId = filter.objectId ? [`objectId eq ${odataString(filter.objectId)}`] : [];
  const byRegistryAndOutcome = [...(filter.registry ? [`registry eq ${odataString(filter.registry)}`] : []), ...(filter.outcome ? [`outcome eq ${odataString(filter.outcome)}`] : [])];
  const common = [...byRegistryAndOutcome, ...(filter.requestId ? [`requestId eq ${odataString(filter.requestId)}`] : [])];
  const key = filter.repository ? repositoryIndex(filter.repository) : filter.objectId ? objectIdIndex(filter.objectId) : undefined;
  // The marker's own hour may hold records from before it: that hour, and earlier ones, are scanned.
  const indexedFrom = key && index?.since ? Math.floor(index.since.getTime() / 3600_000) * 3600_000 + 3600_000 : undefined;
  const indexed = indexedFrom !== undefined && filter.to.getTime() >= indexedFrom;
  const scanTo = indexed ? new Date(Math.min(filter.to.getTime(), indexedFrom - 1)) : filter.to;
  const scanned = filter.from <= scanTo;
  const cursor = filter.cursor;

  let records: Entity[] = [];
  if (indexed && (!cursor || 'm' in cursor)) {
    const page = await readIndex(index!.table, key!, {
      from: new Date(Math.max(filter.from.getTime(), indexedFrom)),
      to: filter.to,
      limit: filter.limit,
      cursor,
      // Index rows carry identity, registry and outcome; the request id is per listed record.
      conditions: [...byObjectId, ...byRegistryAndOutcome],
      requestId: filter.requestId,
    });
    records = await readRecords(table, page.records);
    if (page.next) return answer(records, page.next);
    if (!scanned) return answer(records, undefined);
    if (page.records.length === filter.limit) return answer(records, { h: hourBucket(scanTo) });
  } else if (cursor && !('h' in cursor)) {
    return answer([], undefined);
  }
  if (!scanned) return answer(records, undefined);
  const { repository } = filter;
  const page = await queryTimeRange(table, ISSUANCE_SHARDS, {
    from: filter.from,
    to: scanTo,
    limit: filter.limit - records.length,
    cursor: cursor && 'h' in cursor ? cursor : undefined,
    conditions: [...byObjectId, ...common],
    accept: repository
      ? (entity) => listField(entity.requestedScopes).some((scope) => {
          const parsed = parseScope(scope);
          return parsed.ok && parsed.scope.repository === repository;
        })
      : undefined,
  });
  return answer([...records, ...page.items], page.next);
}

function answer(records: Entity[], next: Cursor | undefined): Page {
  return { issuances: records.map((entity) => fromEntity(issuanceRecordSchema, entity)), nextCursor: next ? encodeCursor(next) : undefined };
}

interface RecordKey {
  partitionKey: string;
  rowKey: string;
}

/**
 * One key's records in a time range, newest first: one key range of one partition per month. Rows
 * hold the records of one second (indexKeys.ts), and rows of one second may interleave (several
 * batches, several instances), so the records of a second are sorted before any is returned; a page
 * ends at a record, and the next one reads its second again and resumes after that record.
 */
async function readIndex(
  table: TableClient,
  key: string,
  request: { from: Date; to: Date; limit: number; cursor: Cursor | undefined; conditions: string[]; requestId: string | undefined },
): Promise<{ records: RecordKey[]; next: Cursor | undefined }> {
  const months = monthBucketsBetween(request.from, request.to);
  const startAt = request.cursor && 'm' in request.cursor ? months.indexOf(request.cursor.m) : 0;
  if (startAt < 0) return { records: [], next: undefined };
  const newest = invertedTime(request.to);
  const beyond = invertedTime(new Date(request.from.getTime() - 1));
  const records: RecordKey[] = [];
  for (let index = startAt; index < months.length; index++) {
    const month = months[index]!;
    const after = request.cursor && 'm' in request.cursor && request.cursor.m === month ? request.cursor.a : undefined;
    const from = after !== undefined && after > newest ? after : newest;
    const filter = [`PartitionKey eq ${odataString(indexPartition(key, month))}`, `RowKey ge ${odataString(`${key}|${secondOf(from)}`)}`, `RowKey lt ${odataString(`${key}|${beyond}`)}`, ...request.conditions];
    let second: RecordKey[] = [];
    let secondKey: string | undefined;
    /** The records of the second read so far, in order, up to the limit; true when the page is full. */
    const emit = () => {
      second.sort((a, b) => (a.rowKey < b.rowKey ? -1 : 1));
      for (const record of second) {
        if (records.length === request.limit) return true;
        records.push(record);
      }
      second = [];
      return records.length === request.limit;
    };
    // Pages of at most 1,000 (Table Storage's own cap), so a full answer is one query, not two; a
    // request id is looked for row by row, so then the most a page holds.
    const pageSize = request.requestId === undefined ? Math.min(MAX_PAGE, request.limit + 1) : MAX_PAGE;
    const pages = table.listEntities<Record<string, unknown>>({ queryOptions: { filter: filter.join(' and ') } }).byPage({ maxPageSize: pageSize });
    for await (const page of pages) {
      for (const row of page) {
        const rowSecond = secondOf(row.rowKey!.slice(key.length + 1));
        if (rowSecond !== secondKey && emit()) return { records, next: { m: month, a: records.at(-1)!.rowKey } };
        secondKey = rowSecond;
        const partitionKey = typeof row.recordPartition === 'string' ? row.recordPartition : undefined;
        if (!partitionKey) continue;
        for (const listed of listedRecords(row)) {
          if (listed.rowKey >= newest && listed.rowKey < beyond && (after === undefined || listed.rowKey > after) && (request.requestId === undefined || listed.requestId === request.requestId)) second.push({ partitionKey, rowKey: listed.rowKey });
        }
      }
    }
    // Full: the month may hold more, so say where to resume rather than read on to find out.
    if (emit()) return { records, next: { m: month, a: records.at(-1)!.rowKey } };
  }
  return { records, next: undefined };
}

/** The records named, by key and in order; one that is missing (its write failed after its index rows) is skipped. */
async function readRecords(table: TableClient, keys: RecordKey[]): Promise<Entity[]> {
  const records: (Entity | undefined)[] = new Array(keys.length);
  let next = 0;
  const reader = async () => {
    while (next < keys.length) {
      const at = next++;
      const target = keys[at]!;
      try {
        records[at] = await table.getEntity<Record<string, unknown>>(target.partitionKey, target.rowKey);
      } catch (error) {
        if (azureStatus(error) !== 404) throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(RECORD_READS_IN_FLIGHT, keys.length) }, reader));
  return records.filter((record) => record !== undefined);
}
