import type { TableClient } from '@azure/data-tables';
import { problems } from '../http/problem.js';
import { parseScope } from '../registries/scope.js';
import type { Outcome } from './issuanceRecord.js';
import { ISSUANCE_SHARDS } from './partitioning.js';
import { objectIdIndex, repositoryIndex, type IndexMarker } from './indexKeys.js';
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

/** An audit record as the admin API shows it. */
export interface IssuanceView {
  issuanceId: string;
  time: string;
  outcome: string;
  reason: string;
  status: number;
  requestId: string;
  tenantId?: string;
  objectId?: string;
  appId?: string;
  registry?: string;
  requestedScopes: string[];
  grantedScopes: string[];
  grantIds: string[];
  expiresAt?: string;
  latencyMs: number;
  clientIp: string;
  tokenFingerprint?: string;
  tokenReused?: boolean;
  credentialVersion?: string;
  upstreamScope?: string;
  form?: string;
  credentialId?: string;
  /** Aggregates of failed authentications: how many requests this row stands for (one address, reason, minute). */
  count?: number;
}

function list(value: unknown): string[] {
  try {
    const parsed: unknown = JSON.parse(String(value ?? '[]'));
    return Array.isArray(parsed) ? parsed.map(String) : [];
  } catch {
    return [];
  }
}

const text = (value: unknown) => (value === undefined || value === null ? undefined : String(value));
const iso = (value: unknown) => (value instanceof Date ? value.toISOString() : text(value));

export function toView(entity: Entity): IssuanceView {
  return {
    issuanceId: String(entity.issuanceId),
    time: iso(entity.time) ?? '',
    outcome: String(entity.outcome),
    reason: String(entity.reason),
    status: Number(entity.status),
    requestId: String(entity.requestId),
    tenantId: text(entity.tenantId),
    objectId: text(entity.objectId),
    appId: text(entity.appId),
    registry: text(entity.registry),
    requestedScopes: list(entity.requestedScopes),
    grantedScopes: list(entity.grantedScopes),
    grantIds: list(entity.grantIds),
    expiresAt: iso(entity.expiresAt),
    latencyMs: Number(entity.latencyMs),
    clientIp: String(entity.clientIp),
    tokenFingerprint: text(entity.tokenFingerprint),
    tokenReused: typeof entity.tokenReused === 'boolean' ? entity.tokenReused : undefined,
    credentialVersion: text(entity.credentialVersion),
    upstreamScope: text(entity.upstreamScope),
    form: text(entity.form),
    credentialId: text(entity.credentialId),
    count: typeof entity.count === 'number' ? entity.count : undefined,
  };
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

  async search(filter: IssuanceFilter): Promise<{ issuances: IssuanceView[]; nextCursor: string | undefined }> {
    try {
      return await searchIssuances(this.table, filter, filter.repository || filter.objectId ? await this.marker.since() : undefined);
    } catch {
      throw problems.dependencyDown('audit', 'The issuance audit table (Table Storage) is unavailable.');
    }
  }
}

export async function searchIssuances(table: TableClient, filter: IssuanceFilter, indexedSince?: Date): Promise<{ issuances: IssuanceView[]; nextCursor: string | undefined }> {
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
  return { issuances: page.items.map(toView), nextCursor: page.next ? encodeCursor(page.next) : undefined };
}
