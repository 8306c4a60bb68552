import type { TableClient } from '@azure/data-tables';
import { azureStatus, errors } from '../errors.js';
import type { Logger } from '../logger.js';
import { createInTransaction, createOne, encodeEntity, type EncodedEntity, type EncodedProperties } from '../tableBatch.js';
import { tableReady } from '../tableStore.js';
import { telemetry } from '../telemetry/instruments.js';
import { indexRows, type IndexedRecord, type IndexFields } from './indexKeys.js';
import { FULL_BATCH, hourBucket, laneShard, partitionKey, rowKey } from './partitioning.js';

/**
 * How long a batch waits for company after its latest record: small next to a Table round trip. While
 * records keep coming (load), it keeps waiting, up to MAX_LINGER_MS: fewer, fuller transactions cost
 * less CPU and fewer Table requests than many small ones.
 */
const LINGER_MS = 2;
const MAX_LINGER_MS = 10;
/** A write that has not answered by then answers 503: a hung Table must not hold a request for long. */
const WRITE_DEADLINE_MS = 4_000;
/** However little of a request's budget is left, its write gets this long. */
const MIN_WRITE_MS = 1_000;

/** Where a record is also found: listed in the index table under these keys (see indexKeys.ts). */
export interface IndexEntries {
  keys: string[];
  /** The few fields a search filters on, so that it reads only the index rows that match. */
  fields: IndexFields;
}

interface Pending {
  /** When the request waiting on this record must have its answer (epoch ms). */
  deadline: number;
  record: EncodedEntity;
  indexed: IndexedRecord | undefined;
  resolve: () => void;
  reject: (error: unknown) => void;
}

interface OpenBatch {
  partitionKey: string;
  items: Pending[];
  timer: NodeJS.Timeout;
  openedAt: number;
}

/**
 * Writes audit entities durably and tells each caller when its own entity is stored. Records that
 * arrive together share one entity-group transaction; each new batch takes the next shard, so a
 * busy instance spreads its writes across partitions. A failed transaction fails every record in
 * it, and every waiting request answers 503 without its token: fail closed.
 *
 * Lanes split the shards between kinds of record (issued / refused): records of different lanes
 * never share a partition, so never a transaction, and a burst of one kind cannot fail the other.
 *
 * Index rows go to their own table, in transactions of their own (one per index partition) written
 * *before* the records: a record is never stored without its index rows, and a row whose records then
 * failed to be stored points at nothing, which the search skips. The audit table holds exactly one
 * entity per decision.
 */
export class AuditWriter {
  private readonly ready: () => Promise<void>;
  private readonly indexReady: () => Promise<void>;
  private readonly open = new Map<string, OpenBatch>();
  private readonly nextShard: Map<string, number>;

  constructor(
    private readonly table: TableClient,
    private readonly log: Logger,
    private readonly dependency: string,
    private readonly shards: number,
    private readonly lanes: readonly string[] = [''],
    private readonly indexTable?: TableClient,
  ) {
    this.ready = tableReady(table);
    this.indexReady = indexTable ? tableReady(indexTable) : async () => undefined;
    this.nextShard = new Map(lanes.map((lane) => [lane, Math.floor(Math.random() * shards)]));
  }

  /** Makes sure both tables exist (once, together): a cold instance's first write then waits one round trip for it, not two. */
  async prepare(): Promise<void> {
    await Promise.all([this.ready(), this.indexReady()]);
  }

  /** `deadline`: when the waiting request must answer; the write gives up in time for it (at most 4 s). */
  write(time: Date, id: string, properties: EncodedProperties, lane = this.lanes[0]!, index?: IndexEntries, deadline = Date.now() + WRITE_DEADLINE_MS): Promise<void> {
    const bucket = `${hourBucket(time)}/${lane}`;
    let batch = this.open.get(bucket);
    if (!batch) {
      const offset = this.nextShard.get(lane);
      if (offset === undefined) throw new Error(`unknown audit lane ${lane}`);
      const key = partitionKey(time, laneShard(this.lanes.indexOf(lane), this.lanes.length, this.shards, offset));
      this.nextShard.set(lane, offset + 1);
      batch = { partitionKey: key, items: [], timer: setTimeout(() => this.flush(bucket), LINGER_MS), openedAt: Date.now() };
      this.open.set(bucket, batch);
    } else {
      const left = MAX_LINGER_MS - (Date.now() - batch.openedAt);
      batch.timer.refresh();
      if (left < LINGER_MS) {
        clearTimeout(batch.timer);
        batch.timer = setTimeout(() => this.flush(bucket), Math.max(0, left));
      }
    }
    const record = { partitionKey: batch.partitionKey, rowKey: rowKey(time, id), properties };
    const indexed = this.indexTable && index ? { time, rowKey: record.rowKey, keys: index.keys, fields: index.fields } : undefined;
    const open = batch;
    const written = new Promise<void>((resolve, reject) => open.items.push({ deadline, record, indexed, resolve, reject }));
    if (open.items.length >= FULL_BATCH) this.flush(bucket);
    return written;
  }

  private flush(bucket: string): void {
    const batch = this.open.get(bucket);
    if (!batch) return;
    this.open.delete(bucket);
    clearTimeout(batch.timer);
    void this.submit(batch.items);
  }

  private async submit(items: Pending[]): Promise<void> {
    try {
      const until = Math.min(...items.map((item) => item.deadline));
      const abortSignal = AbortSignal.timeout(Math.min(WRITE_DEADLINE_MS, Math.max(MIN_WRITE_MS, until - Date.now())));
      await this.prepare();
      const indexed = items.flatMap((item) => (item.indexed ? [item.indexed] : []));
      const transactions = indexed.length === 0 ? [] : byPartition(indexRows(items[0]!.record.partitionKey, indexed).map(encodeEntity));
      await Promise.all(transactions.map((group) => this.create(this.indexTable!, group, abortSignal)));
      await this.create(this.table, items.map((item) => item.record), abortSignal);
      for (const item of items) item.resolve();
    } catch (error) {
      this.log.error('audit write failed', { table: this.dependency, records: items.length, status: azureStatus(error) });
      telemetry.auditWriteFailed(this.dependency, items.length);
      const failure = errors.dependencyDown('audit', 'The audit record could not be written, so nothing was issued or changed.');
      for (const item of items) item.reject(failure);
    }
  }

  private async create(table: TableClient, entities: EncodedEntity[], abortSignal: AbortSignal): Promise<void> {
    try {
      if (entities.length === 1) await createOne(table, entities[0]!, abortSignal);
      else await createInTransaction(table, entities, abortSignal);
    } catch (error) {
      // Row keys end in a fresh ULID nobody else writes: a conflict means an earlier attempt of this
      // very write was stored and only its answer was lost (the SDK retried). The entities are durable.
      if (azureStatus(error) !== 409) throw error;
      this.log.warn('audit write answered 409 after a retry; the records were already stored', { table: this.dependency, records: entities.length });
    }
  }
}

/**
 * Entities by partition. A batch's index rows fit one transaction per partition: a record adds at most
 * one row to each index partition, and a batch holds at most FULL_BATCH records.
 */
function byPartition(entities: EncodedEntity[]): EncodedEntity[][] {
  const groups = new Map<string, EncodedEntity[]>();
  for (const entity of entities) {
    const group = groups.get(entity.partitionKey);
    if (group) group.push(entity);
    else groups.set(entity.partitionKey, [entity]);
  }
  return [...groups.values()];
}
