import type { TableClient, TableEntity, TransactionAction } from '@azure/data-tables';
import { azureStatus } from '../errors.js';
import { RefreshingCache } from '../refreshingCache.js';

/**
 * A partition whose every write also replaces one version row, in the same entity-group transaction:
 * the row's ETag then changes exactly when something in the partition did, and an instance can tell
 * whether its copy is current with one point read instead of reading every row. The version row's
 * key starts with `~`, which no grant id or object ID can.
 */
export const VERSION_ROW = '~version';

/** A read or write that has not finished by then fails: callers answer 503 instead of waiting. */
const TABLE_DEADLINE_MS = 4000;

/**
 * Cache refreshes of grants and blocks. A refresh may read the whole partition, which for a large
 * organisation takes a while: it goes on in the background for up to REFRESH_DEADLINE_MS (also how
 * long one stuck on a dead connection can delay recovery). A reader waits for it COLD_WAIT_MS when
 * nothing is cached, and STALE_WAIT_MS when the stale list (within the 30 s promise) can answer, so
 * that a slow or hung table adds little to a request that also has its audit write to make.
 */
const REFRESH_DEADLINE_MS = 15_000;
const COLD_WAIT_MS = 2000;
const STALE_WAIT_MS = 250;
/**
 * Other instances see an admin write within TTL + stale window: DESIGN.md allows at most 30 s, so a
 * revoked grant or a lifted block never outlives that, not even while Table Storage is unreachable or slow.
 */
const CACHE_TTL_MS = 15_000;
const CACHE_STALE_MS = 15_000;
/** A refresh reads every row only when the version row moved, and at least this often regardless. */
export const FULL_READ_MS = 5 * 60_000;

/** The cache of a whole versioned partition (grants, blocks), with the timings above. */
export function partitionCache<V>(load: (signal: AbortSignal | undefined) => Promise<V>, now?: () => number): RefreshingCache<'all', V> {
  return new RefreshingCache<'all', V>({
    ttlMs: CACHE_TTL_MS,
    staleMs: CACHE_STALE_MS,
    timeoutMs: REFRESH_DEADLINE_MS,
    waitMs: COLD_WAIT_MS,
    staleWaitMs: STALE_WAIT_MS,
    ...(now ? { now } : {}),
    load: (_key, signal) => load(signal),
  });
}

export function deadline(): AbortSignal {
  return AbortSignal.timeout(TABLE_DEADLINE_MS);
}

/** The partition's version now: the version row's ETag, or '' before the first write. */
export async function partitionVersion(table: TableClient, partitionKey: string, abortSignal: AbortSignal | undefined): Promise<string> {
  try {
    return (await table.getEntity(partitionKey, VERSION_ROW, { abortSignal, queryOptions: { select: ['RowKey'] } })).etag;
  } catch (error) {
    if (azureStatus(error) === 404) return '';
    throw error;
  }
}

function versionRow(partitionKey: string): TableEntity {
  return { partitionKey, rowKey: VERSION_ROW, changedAt: new Date() };
}

/** Submits `action` together with a new version row; answers the ETag the action's entity got. */
export async function writeVersioned(table: TableClient, partitionKey: string, action: TransactionAction): Promise<string> {
  const response = await table.submitTransaction([action, ['upsert', versionRow(partitionKey), 'Replace']], { abortSignal: deadline() });
  // Sub-responses come in the order of the actions; only creates name their row key.
  return response.subResponses[0]?.etag ?? '';
}

/**
 * A delete, then a new version row. The SDK cannot make a delete in a transaction conditional, so
 * the two are separate: a failure in between surfaces to the admin, whose retry gets here again
 * (a retried delete of a row already gone bumps too), and the periodic full read bounds the rest.
 */
export async function deleteVersioned(table: TableClient, partitionKey: string, rowKey: string, etag: string | undefined): Promise<void> {
  try {
    await table.deleteEntity(partitionKey, rowKey, { abortSignal: deadline(), ...(etag === undefined ? {} : { etag }) });
  } finally {
    await table.upsertEntity(versionRow(partitionKey), 'Replace', { abortSignal: deadline() });
  }
}

/** The filter for every row of the partition but its version row. */
export function rowsOf(partitionKey: string): string {
  return `PartitionKey eq '${partitionKey}' and RowKey ne '${VERSION_ROW}'`;
}
