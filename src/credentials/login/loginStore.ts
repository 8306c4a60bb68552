import type { TableClient } from '@azure/data-tables';
import { azureStatus } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { guarded, tableReady } from '../../tableStore.js';
import { loginProblems } from './loginProblems.js';

/**
 * State of one login credential: `creating` is written before the provider is asked (so a crash
 * or a lost answer leaves a row that cleanup follows up), `live` once it exists, `deleted` once it
 * is gone at the provider, `failed` when the provider refused and nothing exists.
 */
export type LoginState = 'creating' | 'live' | 'deleted' | 'failed';

/** One row per login credential, keyed by the issuance that created it. Never the password. */
export interface LoginCredentialRow {
  issuanceId: string;
  state: LoginState;
  tenantId: string;
  objectId: string;
  registry: string;
  provider: string;
  scopes: string[];
  createdAt: Date;
  credentialId?: string;
  username?: string;
  /** SHA-256 prefix of the password: matches a leaked one to its row, useless to replay. */
  fingerprint?: string;
  expiresAt?: Date;
  deletedAt?: Date;
  /** `expired`, `blocked`, `abandoned` (its create never completed), `unrecorded` (created, then the table failed). */
  deleteReason?: string;
  lastError?: string;
}

const PARTITION = 'login';
type Entity = Omit<LoginCredentialRow, 'issuanceId' | 'scopes'> & { scopes: string };

function toRow(entity: Entity & { rowKey?: string }): LoginCredentialRow {
  const { rowKey, scopes, ...rest } = entity;
  const row: Record<string, unknown> = { issuanceId: rowKey!, scopes: JSON.parse(scopes) as string[] };
  for (const [key, value] of Object.entries(rest)) {
    if (['partitionKey', 'etag', 'timestamp', 'odata.metadata'].includes(key)) continue;
    row[key] = value;
  }
  return row as unknown as LoginCredentialRow;
}

/**
 * The `logincredentials` table: every create and delete of a login credential, with the issuance
 * id, so revocation and cleanup work from any instance and survive restarts.
 */
export class LoginCredentialStore {
  private readonly ready: () => Promise<void>;

  constructor(
    private readonly table: TableClient,
    private readonly log: Logger,
  ) {
    this.ready = tableReady(table);
  }

  begin(row: LoginCredentialRow): Promise<void> {
    const { issuanceId, scopes, ...rest } = row;
    return this.guard(() => this.table.createEntity({ partitionKey: PARTITION, rowKey: issuanceId, ...defined(rest), scopes: JSON.stringify(scopes) }).then(() => undefined));
  }

  update(issuanceId: string, changes: Partial<Omit<LoginCredentialRow, 'issuanceId'>>): Promise<void> {
    return this.guard(() => this.table.updateEntity({ partitionKey: PARTITION, rowKey: issuanceId, ...defined(changes) }, 'Merge').then(() => undefined));
  }

  async get(issuanceId: string): Promise<LoginCredentialRow | undefined> {
    return this.guard(async () => {
      try {
        return toRow(await this.table.getEntity<Entity>(PARTITION, issuanceId));
      } catch (error) {
        if (azureStatus(error) === 404) return undefined;
        throw error;
      }
    });
  }

  /** Rows that may still exist at the provider: live, and creations that never finished. */
  async open(filter = ''): Promise<LoginCredentialRow[]> {
    return this.guard(async () => {
      const rows: LoginCredentialRow[] = [];
      const query = `PartitionKey eq '${PARTITION}' and (state eq 'live' or state eq 'creating')${filter}`;
      for await (const entity of this.table.listEntities<Entity>({ queryOptions: { filter: query } })) rows.push(toRow(entity));
      return rows;
    });
  }

  /** Open rows of one identity; `objectId` is a GUID checked by the caller. */
  openFor(objectId: string): Promise<LoginCredentialRow[]> {
    return this.open(` and objectId eq '${objectId.replace(/'/g, "''")}'`);
  }

  private guard<T>(action: () => Promise<T>): Promise<T> {
    return guarded(this.ready, action, this.log, 'login credential table', loginProblems.storeDown);
  }
}

function defined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
