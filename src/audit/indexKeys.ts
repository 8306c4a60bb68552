import type { TableClient } from '@azure/data-tables';
import { parseScope } from '../registries/scope.js';
import { tableReady, tableStatus } from '../tables.js';
import type { IssuanceRecord } from './issuanceRecord.js';

/**
 * Index rows of the issuances table. Each record is also written under `o|<objectId>|<row key>` and
 * `r|<repository>|<row key>` for each repository it asked for, in its own partition and transaction,
 * so "who got push on acme/web" reads one key range per partition instead of every record. Row keys
 * may not hold `/`, so a repository's `/` is written `!` (neither is in the OCI name grammar, and `|`
 * ends the name, so `r|acme|` never matches `acme/web`).
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

const MARKER = { partitionKey: 'meta', rowKey: 'index-since' } as const;
const RECHECK_MS = 60_000;

/**
 * When indexing began in this table: every record from then on has its index rows. Searches read
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
          if (tableStatus(error) !== 409) this.creating = undefined;
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
      if (tableStatus(error) !== 404) throw error;
    }
    return this.known;
  }
}
