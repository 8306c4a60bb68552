import type { TableClient } from '@azure/data-tables';
import { errors } from '../errors.js';
import { parseScope } from '../registries/scope.js';
import { fromEntity, listField } from './entityCodec.js';
import { issuanceRecordSchema, type IssuanceRecord, type Outcome } from './issuanceRecord.js';
import { ISSUANCE_SHARDS } from './partitioning.js';
import { objectIdIndex, pointedRowKey, repositoryIndex, type IndexMarker } from './indexKeys.js';
import { hourBucket } from './partitioning.js';
import { encodeCursor, odataString, queryTimeRange, type BucketPlan, type Cursor, type Entity } from './timeRangeQuery.js';

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

/**
 * "Who got push on acme/web last Tuesday?": the issuances table, newest first, by time bucket. A
 * search by repository or identity reads the index rows (indexKeys.ts) of every hour since indexing
 * began, many hours at once, and scans the records of hours before that, so it never misses one.
 */
const INDEX_LOOKAHEAD_HOURS = 24;
/** Records fetched by key in one query (an OData filter of `or`ed row keys). */
const POINT_READS_PER_QUERY = 40;

export class IssuanceSearch {
  constructor(
    private readonly table: TableClient,
    private readonly indexTable: TableClient,
    private readonly marker: IndexMarker,
  ) {}

  async search(filter: IssuanceFilter): Promise<{ issuances: IssuanceRecord[]; nextCursor: string | undefined }> {
    try {
      const index = filter.repository || filter.objectId ? { table: this.indexTable, since: await this.marker.since() } : undefined;
      return await searchIssuances(this.table, filter, index);
    } catch {
      throw errors.dependencyDown('audit', 'The issuance audit table (Table Storage) is unavailable.');
    }
  }
}

export async function searchIssuances(
  table: TableClient,
  filter: IssuanceFilter,
  index?: { table: TableClient; since: Date | undefined },
): Promise<{ issuances: IssuanceRecord[]; nextCursor: string | undefined }> {
  const indexedSince = index?.since;
  const common = [
    ...(filter.registry ? [`registry eq ${odataString(filter.registry)}`] : []),
    ...(filter.outcome ? [`outcome eq ${odataString(filter.outcome)}`] : []),
    ...(filter.requestId ? [`requestId eq ${odataString(filter.requestId)}`] : []),
  ];
  const byObjectId = filter.objectId ? [`objectId eq ${odataString(filter.objectId)}`] : [];
  const { repository } = filter;
  const scanned: BucketPlan = {
    conditions: [...byObjectId, ...common],
    accept: repository
      ? (entity) => listField(entity.requestedScopes).some((scope) => {
          const parsed = parseScope(scope);
          return parsed.ok && parsed.scope.repository === repository;
        })
      : undefined,
  };
  const indexed: BucketPlan | undefined = !index
    ? undefined
    : repository
      ? { table: index.table, prefix: repositoryIndex(repository), conditions: [...byObjectId, ...common] }
      : filter.objectId
        ? { table: index.table, prefix: objectIdIndex(filter.objectId), conditions: common }
        : undefined;
  // The marker's own hour may hold records from before it: that hour, and earlier ones, are scanned.
  const firstIndexedHour = indexedSince ? hourBucket(new Date(indexedSince.getTime() + 3600_000)) : undefined;
  const useIndex = (bucket: string) => indexed !== undefined && firstIndexedHour !== undefined && bucket >= firstIndexedHour;
  const fullyIndexed = useIndex(hourBucket(filter.from));
  const page = await queryTimeRange(table, ISSUANCE_SHARDS, {
    from: filter.from,
    to: filter.to,
    limit: filter.limit,
    cursor: filter.cursor,
    conditions: scanned.conditions,
    plan: (bucket) => (useIndex(bucket) ? indexed! : scanned),
    ...(fullyIndexed ? { maxHours: Number.MAX_SAFE_INTEGER, lookahead: INDEX_LOOKAHEAD_HOURS } : {}),
  });
  const records = await resolvePointers(table, page.items);
  return { issuances: records.map((entity) => fromEntity(issuanceRecordSchema, entity)), nextCursor: page.next ? encodeCursor(page.next) : undefined };
}

/** Point reads of the records that index pointers name, in the pointers' order; a pointer to nothing is skipped. */
async function resolvePointers(table: TableClient, items: Entity[]): Promise<Entity[]> {
  const wanted = new Map<string, string[]>();
  for (const item of items) {
    if (!item.rowKey?.includes('|')) continue;
    wanted.set(item.partitionKey!, [...(wanted.get(item.partitionKey!) ?? []), pointedRowKey(item.rowKey)]);
  }
  if (wanted.size === 0) return items;
  const found = new Map<string, Entity>();
  const reads: Promise<void>[] = [];
  for (const [partition, rows] of wanted) {
    for (let start = 0; start < rows.length; start += POINT_READS_PER_QUERY) {
      const chunk = rows.slice(start, start + POINT_READS_PER_QUERY);
      const filter = `PartitionKey eq ${odataString(partition)} and (${chunk.map((row) => `RowKey eq ${odataString(row)}`).join(' or ')})`;
      reads.push(
        (async () => {
          for await (const entity of table.listEntities<Record<string, unknown>>({ queryOptions: { filter } })) found.set(`${partition}/${entity.rowKey}`, entity);
        })(),
      );
    }
  }
  await Promise.all(reads);
  return items.flatMap((item) => {
    if (!item.rowKey?.includes('|')) return [item];
    const record = found.get(`${item.partitionKey}/${pointedRowKey(item.rowKey)}`);
    return record ? [record] : [];
  });
}
