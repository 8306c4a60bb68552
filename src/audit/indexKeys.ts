import type { TableClient } from '@azure/data-tables';
import { azureStatus } from '../errors.js';
import { parseScope } from '../registries/scope.js';
import { tableReady } from '../tableStore.js';
import type { IssuanceRecord } from './issuanceRecord.js';
import { monthBucket } from './partitioning.js';

/**
 * The issuance search index: table `issuanceindex`. For each record, a pointer row for its objectId
 * and one per repository it asked for, written before the record (see AuditWriter). The index-entity
 * pattern: a pointer lives in partition `<key>|<yyyymm>` under row key `<key>|<record's row key>`, so
 * "who got push on acme/web in November" is one key range of one partition, newest first, whatever
 * else was issued. (One key's pointers share a partition, so about 2,000 issuances a second for one
 * repository is where Azure starts throttling them.) Keys may not hold `/`, so a repository's `/` is
 * written `!` (neither is in the OCI name grammar, and `|` ends the name, so `r|acme|` never matches
 * `acme/web`). Pointers carry the fields searches filter on, and the partition of their record.
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

export function pointerFields(record: Pick<IssuanceRecord, 'objectId' | 'registry' | 'outcome' | 'requestId'>): Record<string, unknown> {
  return Object.fromEntries(Object.entries({ objectId: record.objectId, registry: record.registry, outcome: record.outcome, requestId: record.requestId }).filter(([, value]) => value !== undefined));
}

/** The index partition holding `key`'s pointers of month `month`. */
export function indexPartition(key: string, month: string): string {
  return `${key}|${month}`;
}

export interface Pointer {
  partitionKey: string;
  rowKey: string;
  recordPartition: string;
  [field: string]: unknown;
}

export function pointer(key: string, time: Date, record: { partitionKey: string; rowKey: string }, fields: Record<string, unknown>): Pointer {
  return { partitionKey: indexPartition(key, monthBucket(time)), rowKey: `${key}|${record.rowKey}`, recordPartition: record.partitionKey, ...fields };
}

/** The record a pointer row points at: its partition and row key. */
export function pointedRecord(entity: { rowKey?: string; recordPartition?: unknown }): { partitionKey: string; rowKey: string } | undefined {
  const rowKey = entity.rowKey?.slice(entity.rowKey.lastIndexOf('|') + 1);
  return rowKey && typeof entity.recordPartition === 'string' ? { partitionKey: entity.recordPartition, rowKey } : undefined;
}

const MARKER = { partitionKey: 'meta', rowKey: 'index-since' } as const;
const RECHECK_MS = 60_000;

/**
 * When indexing began (a row of the index table): every record from then on has its pointers. Searches read
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
