import type { TableClient } from '@azure/data-tables';
import { problems } from '../http/problem.js';
import type { Logger } from '../logger.js';
import { RefreshingCache } from '../refreshingCache.js';
import { guarded, tableReady, tableStatus } from '../tables.js';
import { grantBodySchema, type Grant } from './model.js';

export interface StoredGrant {
  grant: Grant;
  etag: string;
}

const PARTITION = 'grant';
/**
 * Other instances see an admin write within TTL + stale window: DESIGN.md allows at most 30 s, so a
 * revoked grant can never outlive that, not even while Table Storage is unreachable.
 */
const CACHE_TTL_MS = 15_000;
const CACHE_STALE_MS = 15_000;

interface GrantEntity {
  partitionKey: string;
  rowKey: string;
  document: string;
}

function unavailable(): Error {
  return problems.dependencyDown('grant-store', 'The grant store (Table Storage) is unavailable.');
}

/** Grants in Table Storage, one entity each, the document as JSON; read through a per-instance cache. */
export class GrantStore {
  private readonly cache: RefreshingCache<'all', Grant[]>;
  private readonly ready: () => Promise<void>;

  constructor(
    private readonly table: TableClient,
    private readonly log: Logger,
  ) {
    this.ready = tableReady(table);
    this.cache = new RefreshingCache({ ttlMs: CACHE_TTL_MS, staleMs: CACHE_STALE_MS, load: () => this.readAll() });
  }

  /** Every valid grant, from the cache. */
  async active(): Promise<Grant[]> {
    try {
      return await this.cache.get('all');
    } catch {
      throw unavailable();
    }
  }

  async list(): Promise<StoredGrant[]> {
    return this.guard(async () => {
      const found: StoredGrant[] = [];
      for await (const entity of this.table.listEntities<GrantEntity>({ queryOptions: { filter: `PartitionKey eq '${PARTITION}'` } })) {
        const grant = this.parse(entity);
        if (grant) found.push({ grant, etag: entity.etag });
      }
      return found.sort((a, b) => (a.grant.id < b.grant.id ? -1 : 1));
    });
  }

  async get(id: string): Promise<StoredGrant> {
    return this.guard(async () => {
      try {
        const entity = await this.table.getEntity<GrantEntity>(PARTITION, id);
        const grant = this.parse(entity);
        if (!grant) throw problems.notFound('grant-not-found', `Grant "${id}" is not readable.`);
        return { grant, etag: entity.etag };
      } catch (error) {
        if (tableStatus(error) === 404) throw problems.notFound('grant-not-found', `There is no grant "${id}".`);
        throw error;
      }
    });
  }

  async create(grant: Grant): Promise<StoredGrant> {
    return this.write(async () => {
      try {
        const result = await this.table.createEntity<GrantEntity>(this.entity(grant));
        return { grant, etag: result.etag ?? '' };
      } catch (error) {
        if (tableStatus(error) === 409) throw problems.conflict(`A grant with id "${grant.id}" already exists.`);
        throw error;
      }
    });
  }

  async replace(grant: Grant, etag: string): Promise<StoredGrant> {
    return this.write(async () => {
      try {
        const result = await this.table.updateEntity<GrantEntity>(this.entity(grant), 'Replace', { etag });
        return { grant, etag: result.etag ?? '' };
      } catch (error) {
        throw this.conditional(error, grant.id);
      }
    });
  }

  async delete(id: string, etag: string): Promise<void> {
    await this.write(async () => {
      try {
        await this.table.deleteEntity(PARTITION, id, { etag });
      } catch (error) {
        throw this.conditional(error, id);
      }
    });
  }

  private conditional(error: unknown, id: string): unknown {
    const status = tableStatus(error);
    if (status === 404) return problems.notFound('grant-not-found', `There is no grant "${id}".`);
    if (status === 412) return problems.preconditionFailed(`Grant "${id}" has changed since that ETag; read it again.`);
    return error;
  }

  private entity(grant: Grant): GrantEntity {
    return { partitionKey: PARTITION, rowKey: grant.id, document: JSON.stringify(grant) };
  }

  private parse(entity: GrantEntity): Grant | undefined {
    try {
      return grantBodySchema.parse(JSON.parse(entity.document));
    } catch {
      this.log.warn('skipping unreadable grant entity', { grantId: entity.rowKey });
      return undefined;
    }
  }

  private async readAll(): Promise<Grant[]> {
    return (await this.list()).map((stored) => stored.grant);
  }

  private async write<T>(action: () => Promise<T>): Promise<T> {
    try {
      return await this.guard(action);
    } finally {
      this.cache.invalidate('all');
    }
  }

  private guard<T>(action: () => Promise<T>): Promise<T> {
    return guarded(this.ready, action, this.log, 'grant store', unavailable);
  }
}
