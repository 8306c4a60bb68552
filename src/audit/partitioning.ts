/**
 * Partition and row keys for time-ordered audit tables. Partitions are hour buckets split into
 * shards, so no partition takes more than its share of the write rate (Azure Tables targets about
 * 2,000 entities/s per partition) and a time-range query reads only the buckets inside the range.
 * Row keys sort newest first within a partition. Keys hold only digits and `-`, never `/ \ # ?`.
 */
/**
 * Issuances can come in thousands per second: 16 shards a lane (issued / refused) let one lane take
 * about 32,000 entities/s before any partition is throttled, past a storage account's own ~20,000,
 * where 4 (as before) stopped at 8,000. Smaller partitions also keep Azurite fast: it checks every
 * insert against the rows of its partition, one by one. Searches read every shard, so records
 * written under fewer shards are still found; a version with fewer shards (a rollback) does not find
 * the records in the others by time range (docs/operations.md). Admin actions are rare and fit one
 * partition an hour.
 */
export const ISSUANCE_SHARDS = 32;
export const ADMIN_AUDIT_SHARDS = 1;

/**
 * An audit writer sends a batch once it holds this many records (a transaction could take 100: one
 * partition, 4 MiB, records are ~1 KB), and a batch lands whole in one shard. Past about 30 records
 * the cost per entity barely falls (Azurite here: 149 µs an entity in transactions of 10, 94 in 30,
 * 77 in 100), while a batch sent at 32 lets the next one fill while it is written: under load, 10–25 %
 * more issuances a second than with batches left to grow to 64 and more (docs/design-decisions.md).
 */
export const FULL_BATCH = 32;

/** The longest time range one audit search may cover (the admin API's and the CLI's `--since`). */
export const MAX_SEARCH_DAYS = 31;

/**
 * Shard `n` (any count, taken modulo) of lane `lane` of `lanes`: each lane owns an equal, contiguous
 * share of the shards, so records of different lanes never share a partition.
 */
export function laneShard(lane: number, lanes: number, shards: number, n: number): number {
  const perLane = Math.max(1, Math.floor(shards / lanes));
  return lane * perLane + (n % perLane);
}

export { invertedTime, newestFirstKey as rowKey } from '../timeKeys.js';

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}

export function hourBucket(time: Date): string {
  return `${time.getUTCFullYear()}${pad(time.getUTCMonth() + 1, 2)}${pad(time.getUTCDate(), 2)}${pad(time.getUTCHours(), 2)}`;
}

export function partitionKey(time: Date, shard: number): string {
  return `${hourBucket(time)}-${shard}`;
}

/** Hour buckets from the one holding `to` back to the one holding `from`, newest first. */
export function hourBucketsBetween(from: Date, to: Date): string[] {
  const buckets: string[] = [];
  const start = Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate(), from.getUTCHours());
  for (let hour = Date.UTC(to.getUTCFullYear(), to.getUTCMonth(), to.getUTCDate(), to.getUTCHours()); hour >= start; hour -= 3600_000) {
    buckets.push(hourBucket(new Date(hour)));
  }
  return buckets;
}

/** `yyyymm` of a moment (UTC): the index's time bucket. */
export function monthBucket(time: Date): string {
  return `${time.getUTCFullYear()}${pad(time.getUTCMonth() + 1, 2)}`;
}

/** Month buckets from the one holding `to` back to the one holding `from`, newest first. */
export function monthBucketsBetween(from: Date, to: Date): string[] {
  const months: string[] = [];
  for (let month = Date.UTC(to.getUTCFullYear(), to.getUTCMonth()); month >= Date.UTC(from.getUTCFullYear(), from.getUTCMonth()); ) {
    const date = new Date(month);
    months.push(monthBucket(date));
    month = Date.UTC(date.getUTCFullYear(), date.getUTCMonth() - 1);
  }
  return months;
}
