import type { TableClient, TableEntityResult } from '@azure/data-tables';
import * as z from 'zod';
import { FULL_BATCH, hourBucketsBetween, invertedTime } from './partitioning.js';

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
  cursor: HourCursor | undefined;
  /** OData conditions on non-key properties, built from validated values. */
  conditions: string[];
  /** Conditions Table Storage cannot express (e.g. a repository inside a JSON list). */
  accept?: (entity: Entity) => boolean;
  maxHours?: number;
}

export type Entity = TableEntityResult<Record<string, unknown>>;

/** Where the next page starts: in an hour bucket of the table (`h`), or in a month of the issuance index (`m`); after row key `a`. */
const hourCursorSchema = z.strictObject({ h: z.string().regex(/^\d{10}$/), a: z.string().max(300).optional() });
const monthCursorSchema = z.strictObject({ m: z.string().regex(/^\d{6}$/), a: z.string().max(300).optional() });
const cursorSchema = z.union([hourCursorSchema, monthCursorSchema]);
export type HourCursor = z.infer<typeof hourCursorSchema>;
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
/** Table Storage answers at most 1,000 entities a page. */
const MAX_PAGE = 1000;

/** Every entity matching `filter`, fetched lazily: `firstPage` of them, then `laterPages` at a time. */
async function* entities(table: TableClient, filter: string, firstPage: number, laterPages: number): AsyncGenerator<Entity> {
  const list = (maxPageSize: number, continuationToken?: string) =>
    table.listEntities<Record<string, unknown>>({ queryOptions: { filter } }).byPage({ maxPageSize, ...(continuationToken === undefined ? {} : { continuationToken }) });
  const first = await list(firstPage).next();
  if (first.done) return;
  yield* first.value;
  if (first.value.continuationToken === undefined) return;
  for await (const page of list(laterPages, first.value.continuationToken)) yield* page;
}

export async function queryTimeRange(table: TableClient, shards: number, request: TimeRangeRequest): Promise<{ items: Entity[]; next: HourCursor | undefined }> {
  const buckets = hourBucketsBetween(request.from, request.to);
  const startAt = request.cursor ? buckets.indexOf(request.cursor.h) : 0;
  if (startAt < 0) return { items: [], next: undefined };
  const stopAt = Math.min(buckets.length, startAt + (request.maxHours ?? DEFAULT_MAX_HOURS));
  // RowKey = inverted time: `to` gives the smallest key in range, `from` the largest.
  const upper = invertedTime(new Date(request.from.getTime() - 1));
  const lower = invertedTime(request.to);
  const items: Entity[] = [];
  // Writers spread their batches over the shards of one lane, half of them, and a batch lands whole in
  // one shard: each shard's first read asks for its share of the page, and at least a full batch, not
  // for the whole page (32 shards would read 32 pages to answer one). A shard that turns out to hold
  // more reads on in whole pages. Records filtered here (`accept`) are mostly read only to be dropped:
  // those read whole pages.
  const laterPages = Math.min(MAX_PAGE, request.limit + 1);
  const share = Math.max(FULL_BATCH, Math.ceil((2 * request.limit) / shards));
  const firstPage = request.accept ? laterPages : Math.min(laterPages, share + 1);

  for (let index = startAt; index < stopAt; index++) {
    const bucket = buckets[index]!;
    const after = request.cursor && bucket === request.cursor.h ? request.cursor.a : undefined;
    const rowRange = [`RowKey ge ${odataString(lower)}`, `RowKey lt ${odataString(upper)}`, ...(after ? [`RowKey gt ${odataString(after)}`] : [])];
    const iterators = Array.from({ length: shards }, (_, shard) =>
      entities(table, [`PartitionKey eq ${odataString(`${bucket}-${shard}`)}`, ...rowRange, ...request.conditions].join(' and '), firstPage, laterPages),
    );
    try {
      const heads = await Promise.all(iterators.map((iterator) => iterator.next()));
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
        if (!request.accept || request.accept(entity)) items.push(entity);
        heads[best] = await iterators[best]!.next();
      }
    } finally {
      await Promise.all(iterators.map((iterator) => iterator.return(undefined))).catch(() => undefined);
    }
    if (items.length === request.limit && index + 1 < buckets.length) return { items, next: { h: buckets[index + 1]! } };
  }
  return { items, next: stopAt < buckets.length ? { h: buckets[stopAt]! } : undefined };
}
