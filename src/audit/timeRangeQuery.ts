import type { TableClient, TableEntityResult } from '@azure/data-tables';
import { z } from 'zod';
import { hourBucketsBetween, invertedTime } from './partitioning.js';

/**
 * Newest-first reads of a time-bucketed audit table. Only the hour buckets inside the range are
 * read, each shard of an hour through its own lazy page iterator, merged by row key (which sorts
 * newest first). A page stops at `limit` records or after `maxHours` buckets, whichever comes first;
 * the cursor says where the next page starts, so paging visits every record exactly once.
 */
export interface TimeRangeRequest {
  from: Date;
  to: Date;
  limit: number;
  cursor: Cursor | undefined;
  /** OData conditions on non-key properties, built from validated values. */
  conditions: string[];
  /** Conditions Table Storage cannot express (e.g. a repository inside a JSON list). */
  accept?: (entity: Entity) => boolean;
  /** Per hour bucket: read the index rows under this row-key prefix instead (see indexKeys.ts), and their own filters. */
  plan?: (bucket: string) => BucketPlan;
  maxHours?: number;
  /** Buckets whose first page is fetched ahead, in parallel: index reads are many and small. */
  lookahead?: number;
}

export interface BucketPlan {
  /** Another table to read this bucket from (the index), under the same partition keys. */
  table?: TableClient;
  prefix?: string;
  conditions: string[];
  accept?: (entity: Entity) => boolean;
}

export type Entity = TableEntityResult<Record<string, unknown>>;

const cursorSchema = z.object({ h: z.string().regex(/^\d{10}$/), a: z.string().max(200).optional() });
export type Cursor = z.infer<typeof cursorSchema>;

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

export function decodeCursor(text: string): Cursor | undefined {
  try {
    const parsed = cursorSchema.safeParse(JSON.parse(Buffer.from(text, 'base64url').toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function odataString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

const DEFAULT_MAX_HOURS = 48;

async function* entities(table: TableClient, filter: string, pageSize: number): AsyncGenerator<Entity> {
  for await (const page of table.listEntities<Record<string, unknown>>({ queryOptions: { filter } }).byPage({ maxPageSize: pageSize })) {
    yield* page;
  }
}

interface OpenBucket {
  iterators: AsyncGenerator<Entity>[];
  heads: Promise<IteratorResult<Entity>[]>;
  accept: ((entity: Entity) => boolean) | undefined;
}

export async function queryTimeRange(table: TableClient, shards: number, request: TimeRangeRequest): Promise<{ items: Entity[]; next: Cursor | undefined }> {
  const buckets = hourBucketsBetween(request.from, request.to);
  const startAt = request.cursor ? buckets.indexOf(request.cursor.h) : 0;
  if (startAt < 0) return { items: [], next: undefined };
  const stopAt = Math.min(buckets.length, startAt + (request.maxHours ?? DEFAULT_MAX_HOURS));
  // RowKey = inverted time: `to` gives the smallest key in range, `from` the largest.
  const upper = invertedTime(new Date(request.from.getTime() - 1));
  const lower = invertedTime(request.to);
  const items: Entity[] = [];
  const opened = new Map<number, OpenBucket>();

  const open = (index: number): OpenBucket => {
    let bucketRead = opened.get(index);
    if (bucketRead) return bucketRead;
    const bucket = buckets[index]!;
    const plan = request.plan?.(bucket) ?? { conditions: request.conditions, accept: request.accept };
    const key = (value: string) => odataString(plan.prefix ? `${plan.prefix}|${value}` : value);
    const after = request.cursor && bucket === request.cursor.h ? request.cursor.a : undefined;
    const rowRange = [`RowKey ge ${key(lower)}`, `RowKey lt ${key(upper)}`, ...(after ? [`RowKey gt ${odataString(after)}`] : [])];
    const iterators = Array.from({ length: shards }, (_, shard) =>
      entities(plan.table ?? table, [`PartitionKey eq ${odataString(`${bucket}-${shard}`)}`, ...rowRange, ...plan.conditions].join(' and '), request.limit + 1),
    );
    bucketRead = { iterators, heads: Promise.all(iterators.map((iterator) => iterator.next())), accept: plan.accept };
    // A failed read ahead is reported when (if ever) its bucket is reached, not as an unhandled rejection.
    bucketRead.heads.catch(() => undefined);
    opened.set(index, bucketRead);
    return bucketRead;
  };
  const closeAll = () => Promise.all([...opened.values()].flatMap((bucketRead) => bucketRead.iterators.map((iterator) => iterator.return(undefined))));

  try {
    for (let index = startAt; index < stopAt; index++) {
      for (let ahead = index; ahead < Math.min(stopAt, index + (request.lookahead ?? 1)); ahead++) open(ahead);
      const bucket = buckets[index]!;
      const { iterators, accept } = open(index);
      const heads = await open(index).heads;
      for (;;) {
        let best = -1;
        heads.forEach((head, i) => {
          if (!head.done && (best === -1 || head.value.rowKey! < (heads[best]!.value as Entity).rowKey!)) best = i;
        });
        if (best === -1) break;
        if (items.length === request.limit) {
          // More in this bucket: the next page resumes right after the last record returned.
          return { items, next: { h: bucket, a: items.at(-1)!.rowKey! } };
        }
        const entity = heads[best]!.value as Entity;
        if (!accept || accept(entity)) items.push(entity);
        heads[best] = await iterators[best]!.next();
      }
      if (items.length === request.limit && index + 1 < buckets.length) return { items, next: { h: buckets[index + 1]! } };
    }
    return { items, next: stopAt < buckets.length ? { h: buckets[stopAt]! } : undefined };
  } finally {
    await closeAll().catch(() => undefined);
  }
}
