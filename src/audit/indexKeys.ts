import type { TableClient } from '@azure/data-tables';
import { azureStatus } from '../errors.js';
import { parseScope } from '../registries/scope.js';
import { tableReady } from '../tableStore.js';
import type { IssuanceRecord } from './issuanceRecord.js';
import { monthBucket } from './partitioning.js';

/**
 * The issuance search index: table `issuanceindex`. Each record is listed under its objectId and
 * under each repository it asked for, written before the record (see AuditWriter). The index-entity
 * pattern: a key's rows live in partition `<key>|<yyyymm>` under row keys `<key>|<record row key>`, so
 * "who got push on acme/web in November" is one key range of one partition, newest first, whatever
 * else was issued. A row lists the records of one writer's batch (see indexRows), so one key's
 * partition takes a row per batch, not per record, well under Azure's ~2,000 entities a second per
 * partition. Keys may not hold `/`, so a repository's `/` is written `!` (neither is in the OCI name
 * grammar, and `|` ends the name, so `r|acme|` never matches `acme/web`).
 */
export const objectIdIndex = (objectId: string) => `o|${objectId}`;
export const repositoryIndex = (repository: string) => `r|${repository.replaceAll('/', '!')}`;

export function issuanceIndexKeys(record: Pick<IssuanceRecord, 'objectId' | 'requestedScopes'>): string[] {
  const repositories = new Set(
    record.requestedScopes.flatMap((text) => {
      const parsed = parseScope(text);
      return parsed.ok ? [parsed.scope.repository] : [];
    }),
  );
  return [...(record.objectId ? [objectIdIndex(record.objectId)] : []), ...[...repositories].map(repositoryIndex)];
}

/** What a search filters on besides the key: the record itself can be handed over, only these are read. */
export type IndexFields = Pick<IssuanceRecord, 'objectId' | 'registry' | 'outcome' | 'requestId'>;

/** The index partition holding `key`'s rows of month `month`. */
export function indexPartition(key: string, month: string): string {
  return `${key}|${month}`;
}

/**
 * Record row keys begin with 13 digits of inverted milliseconds (timeKeys.ts): the first 10 are the
 * record's second. A list row holds records of one second only, so rows of different seconds never
 * interleave and a search sorts only within a second.
 */
const SECOND_DIGITS = 10;
export const secondOf = (recordRowKey: string) => recordRowKey.slice(0, SECOND_DIGITS);

/** What a list row says of one record: its row key, and its request id (the one field a row does not carry). */
export interface ListedRecord {
  rowKey: string;
  requestId?: string;
}

/** A record as the writer indexes it: its row key, the keys it is found under, the fields searches filter on. */
export interface IndexedRecord {
  time: Date;
  rowKey: string;
  keys: string[];
  fields: IndexFields;
}

export interface IndexRow {
  partitionKey: string;
  rowKey: string;
  recordPartition: string;
  /** JSON `[rowKey, requestId][]`, newest first. */
  records: string;
  [field: string]: unknown;
}

/**
 * The index rows of one batch of records (all in `recordPartition`): one row per key, month, second,
 * identity, outcome and registry, listing its records, rather than a row per record and key. A burst
 * from one workload then costs two index entities per batch, not two per record: Table Storage (and,
 * far more, Azurite) charges per entity. Identity, outcome and registry are row properties, so Table
 * Storage still filters on them ("what did this identity get on acme/web" reads only its rows); the
 * request id is per record, filtered by the search. The row key is the key and the newest record's
 * row key, which no other row of that key can have.
 */
export function indexRows(recordPartition: string, records: IndexedRecord[]): IndexRow[] {
  const rows = new Map<string, { partitionKey: string; key: string; fields: Record<string, unknown>; listed: [string, unknown][] }>();
  for (const record of records) {
    const { objectId, outcome, registry, requestId } = record.fields;
    for (const key of record.keys) {
      const partition = indexPartition(key, monthBucket(record.time));
      const group = `${partition}\n${secondOf(record.rowKey)}\n${String(objectId)}\n${String(outcome)}\n${String(registry)}`;
      let row = rows.get(group);
      if (!row) rows.set(group, (row = { partitionKey: partition, key, fields: { objectId, outcome, registry }, listed: [] }));
      row.listed.push([record.rowKey, requestId ?? null]);
    }
  }
  return [...rows.values()].map(({ partitionKey, key, fields, listed }) => {
    listed.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    return { partitionKey, rowKey: `${key}|${listed[0]![0]}`, recordPartition, ...definedOnly(fields), records: JSON.stringify(listed) };
  });
}

function definedOnly(fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
}

/**
 * The records an index row lists. A row without a list (written before lists, one per record) names
 * its one record by its own row key and carries that record's fields.
 */
export function listedRecords(row: { rowKey?: string; records?: unknown; requestId?: unknown }): ListedRecord[] {
  const requestIdOf = (value: unknown) => (typeof value === 'string' ? { requestId: value } : {});
  if (typeof row.records !== 'string') {
    const rowKey = row.rowKey?.slice(row.rowKey.lastIndexOf('|') + 1);
    return rowKey ? [{ rowKey, ...requestIdOf(row.requestId) }] : [];
  }
  return (JSON.parse(row.records) as unknown[][]).map(([rowKey, requestId]) => ({ rowKey: String(rowKey), ...requestIdOf(requestId) }));
}

const MARKER = { partitionKey: 'meta', rowKey: 'index-since' } as const;
const RECHECK_MS = 60_000;

/**
 * When indexing began (a row of the index table): every record from then on is listed. Searches read
 * the index for later hours and scan the records of earlier ones, so no record is ever missed.
 * The first instance that writes records creates the marker; it is never changed afterwards.
 */
export class IndexMarker {
  private readonly ready: () => Promise<void>;
  private known: Date | undefined;
  private checkedAt = 0;
  private creating: Promise<void> | undefined;

  constructor(private readonly table: TableClient) {
    this.ready = tableReady(table);
  }

  /** Best effort, once: a marker written late only makes searches scan a little more. */
  ensure(): void {
    this.creating ??= this.ready()
      .then(() => this.table.createEntity({ ...MARKER, since: new Date() }))
      .then(
        () => undefined,
        (error: unknown) => {
          if (azureStatus(error) !== 409) this.creating = undefined;
        },
      );
  }

  async since(): Promise<Date | undefined> {
    if (this.known || Date.now() - this.checkedAt < RECHECK_MS) return this.known;
    this.checkedAt = Date.now();
    try {
      const entity = await this.table.getEntity<{ since: Date }>(MARKER.partitionKey, MARKER.rowKey);
      this.known = entity.since instanceof Date ? entity.since : new Date(String(entity.since));
    } catch (error) {
      if (azureStatus(error) !== 404) throw error;
    }
    return this.known;
  }
}
