import type { TableClient } from '@azure/data-tables';
import { azureStatus } from '../errors.js';
import { parseScope } from '../registries/scope.js';
import { tableReady } from '../tableStore.js';
import type { IssuanceRecord } from './issuanceRecord.js';

/**
 * The issuance search index: table `issuanceindex`. For each record, a pointer row
 * `o|<objectId>|<record's row key>` and one `r|<repository>|<record's row key>` per repository it
 * asked for, in the record's partition key, written before the record (see AuditWriter). "Who got push
 * on acme/web" then reads one key range per partition instead of every record. Row keys may not hold
 * `/`, so a repository's `/` is written `!` (neither is in the OCI name grammar, and `|` ends the
 * name, so `r|acme|` never matches `acme/web`). Pointers carry the fields searches filter on.
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

/** The record a pointer row points at: its partition, and the row key after the last `|`. */
export function pointedRowKey(pointerRowKey: string): string {
  return pointerRowKey.slice(pointerRowKey.lastIndexOf('|') + 1);
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
