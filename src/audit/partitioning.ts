/**
 * Partition and row keys for time-ordered audit tables. Partitions are hour buckets split into
 * shards, so no partition takes more than its share of the write rate (Azure Tables targets about
 * 2,000 entities/s per partition) and a time-range query reads only the buckets inside the range.
 * Row keys sort newest first within a partition. Keys hold only digits and `-`, never `/ \ # ?`.
 */
export const SHARDS = 8;
const MAX_MILLIS = 9_999_999_999_999;

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}

export function hourBucket(time: Date): string {
  return `${time.getUTCFullYear()}${pad(time.getUTCMonth() + 1, 2)}${pad(time.getUTCDate(), 2)}${pad(time.getUTCHours(), 2)}`;
}

export function partitionKey(time: Date, shard: number): string {
  return `${hourBucket(time)}-${shard}`;
}

export function rowKey(time: Date, id: string): string {
  return `${pad(MAX_MILLIS - time.getTime(), 13)}-${id}`;
}
