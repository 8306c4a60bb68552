import type { TableClient } from '@azure/data-tables';
import { problems } from '../http/problem.js';
import { parseScope } from '../registries/scope.js';
import { fromEntity } from './entityCodec.js';
import { issuanceRecordSchema, type IssuanceRecord, type Outcome } from './issuanceRecord.js';
import { ISSUANCE_SHARDS } from './partitioning.js';
import { objectIdIndex, repositoryIndex, type IndexMarker } from './indexKeys.js';
import { hourBucket } from './partitioning.js';
import { encodeCursor, odataString, queryTimeRange, type BucketPlan, type Cursor } from './timeRangeQuery.js';

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

function list(value: unknown): string[] {
  try {
    const parsed: unknown = JSON.parse(String(value ?? '[]'));
    return Array.isArray(parsed) ? parsed.map(String) : [];
  } catch {
    return [];
  }
}

/**
 * "Who got push on acme/web last Tuesday?": the issuances table, newest first, by time bucket. A
 * search by repository or identity reads the index rows (indexKeys.ts) of every hour since indexing
 * began, many hours at once, and scans the records of hours before that, so it never misses one.
 */
const INDEX_LOOKAHEAD_HOURS = 24;

export class IssuanceSearch {
  constructor(
    private readonly table: TableClient,
    private readonly marker: IndexMarker,
  ) {}

  async search(filter: IssuanceFilter): Promise<{ issuances: IssuanceRecord[]; nextCursor: string | undefined }> {
    try {
      return await searchIssuances(this.table, filter, filter.repository || filter.objectId ? await this.marker.since() : undefined);
    } catch {
      throw problems.dependencyDown('audit', 'The issuance audit table (Table Storage) is unavailable.');
    }
  }
}

export async function searchIssuances(table: TableClient, filter: IssuanceFilter, indexedSince?: Date): Promise<{ issuances: IssuanceRecord[]; nextCursor: string | undefined }> {
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
      ? (entity) => list(entity.requestedScopes).some((scope) => {
          const parsed = parseScope(scope);
          return parsed.ok && parsed.scope.repository === repository;
        })
      : undefined,
  };
  const indexed: BucketPlan | undefined = repository
    ? { prefix: repositoryIndex(repository), conditions: [...byObjectId, ...common] }
    : filter.objectId
      ? { prefix: objectIdIndex(filter.objectId), conditions: common }
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
  return { issuances: page.items.map((entity) => fromEntity(issuanceRecordSchema, entity)), nextCursor: page.next ? encodeCursor(page.next) : undefined };
}
