import { createHash, randomUUID } from 'node:crypto';
import { azureStatus } from '../errors.js';
import type { TableClient, TransactionAction } from '@azure/data-tables';
import { ulid } from '../ids.js';
import { errorSummary, type Logger } from '../logger.js';
import { tableReady } from '../tableStore.js';
import { toEntityFields } from './entityCodec.js';
import { issuanceRecordSchema, type IssuanceRecord } from './issuanceRecord.js';
import { ISSUANCE_LANES } from './issuanceLog.js';
import { ISSUANCE_SHARDS, invertedTime, laneShard, partitionKey } from './partitioning.js';

/**
 * Requests that fail authentication cost no durable row each: anyone can send them, by the thousand.
 * They are counted in memory per (client address, reason, minute) and, once the minute is over,
 * written to the issuances table as one aggregate row per key and instance — inserted, never updated,
 * because the audit tables are append-only for the broker. Best effort: a write that fails is retried
 * at the next flush (every few seconds) and never holds up or fails a request.
 */
interface Tally {
  clientIp: string;
  reason: string;
  status: number;
  minute: number;
  count: number;
  issuanceId: string;
  /** Stable per (instance, address, reason, status): the same row is upserted all minute long. */
  partitionKey: string;
  rowKey: string;
}

export interface FailedAuthenticationsOptions {
  flushMs?: number;
  /** Distinct keys kept per instance; past it, new addresses are counted under `other`. */
  maxKeys?: number;
  now?: () => number;
}

const MINUTE_MS = 60_000;
/** An unwritten minute is given up after this long (Table Storage down for good): memory stays bounded. */
const KEEP_UNWRITTEN_MS = 10 * MINUTE_MS;
const TRANSACTION_LIMIT = 100;

const digest = (text: string) => createHash('sha256').update(text).digest();

export class FailedAuthentications {
  private readonly tallies = new Map<string, Tally>();
  private readonly ready: () => Promise<void>;
  private readonly instance = randomUUID();
  /** Tallies closed early (flush `all`) start again under a new row key: rows are only ever inserted. */
  private generation = 0;
  private readonly maxKeys: number;
  private readonly now: () => number;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly table: TableClient,
    private readonly log: Logger,
    options: FailedAuthenticationsOptions = {},
  ) {
    this.ready = tableReady(table);
    this.maxKeys = options.maxKeys ?? 5000;
    this.now = options.now ?? Date.now;
    setInterval(() => void this.flush(), options.flushMs ?? 5000).unref();
  }

  count(clientIp: string, reason: string, status: number): void {
    const now = this.now();
    const minute = now - (now % MINUTE_MS);
    let key = `${minute}\n${clientIp}\n${reason}\n${status}`;
    let tally = this.tallies.get(key);
    if (!tally && this.tallies.size >= this.maxKeys) {
      clientIp = 'other';
      key = `${minute}\n${clientIp}\n${reason}\n${status}`;
      tally = this.tallies.get(key);
    }
    if (!tally) {
      const id = digest(`${this.instance}\n${this.generation}\n${clientIp}\n${reason}\n${status}`);
      const start = new Date(minute);
      tally = {
        clientIp,
        reason,
        status,
        minute,
        count: 0,
        issuanceId: ulid(),
        // The refused lane's shards, like every other refusal.
        partitionKey: partitionKey(start, laneShard(ISSUANCE_LANES.indexOf('refused'), ISSUANCE_LANES.length, ISSUANCE_SHARDS, id[0]!)),
        rowKey: `${invertedTime(start)}-agg-${id.toString('hex').slice(0, 16)}`,
      };
      this.tallies.set(key, tally);
    }
    tally.count += 1;
  }

  /**
   * Writes the tallies of finished minutes and forgets them once stored. `all` closes the current
   * minute too (shutdown, tests): what comes after it in the same minute gets a row of its own.
   */
  async flush(options: { all?: boolean } = {}): Promise<void> {
    await this.flushing;
    if (options.all) this.generation += 1;
    this.flushing = this.write(options.all ?? false).finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async write(all: boolean): Promise<void> {
    const now = this.now();
    const currentMinute = now - (now % MINUTE_MS);
    const due = [...this.tallies.entries()].filter(([, tally]) => all || tally.minute < currentMinute);
    // Taken out before the write: a failure arriving meanwhile starts a fresh tally, never changes a row in flight.
    for (const [key] of due) this.tallies.delete(key);
    const byPartition = new Map<string, [string, Tally][]>();
    for (const item of due) byPartition.set(item[1].partitionKey, [...(byPartition.get(item[1].partitionKey) ?? []), item]);
    for (const items of byPartition.values()) {
      for (let start = 0; start < items.length; start += TRANSACTION_LIMIT) {
        const chunk = items.slice(start, start + TRANSACTION_LIMIT);
        try {
          await this.ready();
          await this.table.submitTransaction(chunk.map(([, tally]) => insert(tally)));
        } catch (error) {
          // A conflict on our own row keys: an earlier attempt was stored and only its answer was lost.
          if (azureStatus(error) === 409) continue;
          this.log.warn('failed-authentication aggregates not written yet', { rows: chunk.length, status: azureStatus(error), error: errorSummary(error) });
          for (const [key, tally] of chunk) {
            if (now - tally.minute > KEEP_UNWRITTEN_MS) continue;
            const newer = this.tallies.get(key);
            if (newer) newer.count += tally.count;
            else this.tallies.set(key, tally);
          }
        }
      }
    }
  }
}

function insert(tally: Tally): TransactionAction {
  const record: IssuanceRecord = {
    issuanceId: tally.issuanceId,
    requestId: 'aggregate',
    time: new Date(tally.minute),
    outcome: 'denied',
    reason: tally.reason,
    status: tally.status,
    clientIp: tally.clientIp,
    count: tally.count,
    requestedScopes: [],
    grantedScopes: [],
    grantIds: [],
    latencyMs: 0,
  };
  return ['create', { partitionKey: tally.partitionKey, rowKey: tally.rowKey, ...toEntityFields(issuanceRecordSchema, record) }];
}
