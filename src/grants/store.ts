import type { TableClient } from '@azure/data-tables';
import { azureStatus, errors } from '../errors.js';
import type { Logger } from '../logger.js';
import type { RefreshingCache } from '../refreshingCache.js';
import type { CallerIdentity } from '../auth/callerToken.js';
import { guarded, tableReady } from '../tableStore.js';
import { grantBodySchema, type Grant } from './model.js';
import { FULL_READ_MS, deadline, partitionCache, deleteVersioned, partitionVersion, rowsOf, writeVersioned } from './versionedTable.js';

export interface StoredGrant {
  grant: Grant;
  etag: string;
}

const PARTITION = 'grant';

type GrantEntity = {
  partitionKey: string;
  rowKey: string;
  document: string;
};

function unavailable(): Error {
  return errors.dependencyDown('grant-store', 'The grant store (Table Storage) is unavailable.');
}

/**
 * A full read's grants as the cache keeps them: equal registries and action lists shared (never
 * mutated), arrays exactly as long as they are (an array zod builds has room for 17). A grant then
 * holds about 400 bytes with its index entry instead of 700 — 4 MiB instead of 7 at 10,000 grants —
 * and the old space, which V8 sizes after what lives in it, shrinks with them.
 */
function compactor(): (grant: Grant) => Grant {
  const shared = new Map<string, unknown>();
  const share = <T>(key: string, value: T): T => {
    const known = shared.get(key);
    if (known !== undefined) return known as T;
    shared.set(key, value);
    return value;
  };
  return (grant) => {
    const compact: Grant = {
      id: grant.id,
      subjects: grant.subjects.map((subject) => ('objectId' in subject ? { objectId: subject.objectId } : { appId: subject.appId })),
      registry: share(`registry ${grant.registry}`, grant.registry),
      repositories: [...grant.repositories],
      actions: share(`actions ${grant.actions.join(' ')}`, grant.actions),
      enabled: grant.enabled,
    };
    if (grant.description !== undefined) compact.description = grant.description;
    if (grant.maxTtlSeconds !== undefined) compact.maxTtlSeconds = grant.maxTtlSeconds;
    if (grant.notAfter !== undefined) compact.notAfter = grant.notAfter;
    return compact;
  };
}

/** One grant or several: most subjects are named by a single grant, and an array for each costs 56 bytes. */
type Named = Grant | Grant[];

function addTo(map: Map<string, Named>, id: string, grant: Grant): void {
  const known = map.get(id);
  if (known === undefined) map.set(id, grant);
  else if (!Array.isArray(known)) {
    if (known !== grant) map.set(id, [known, grant]);
  } else if (known.at(-1) !== grant) known.push(grant);
}

function grantsOf(map: Map<string, Named>, id: string): Grant[] {
  const found = map.get(id);
  if (found === undefined) return [];
  return Array.isArray(found) ? found : [found];
}

/** Grants looked up by the subjects they name, so that deciding costs the same with 10 grants or 10,000. */
export class GrantIndex {
  private readonly byObjectId = new Map<string, Named>();
  private readonly byAppId = new Map<string, Named>();

  constructor(readonly all: Grant[]) {
    for (const grant of all) {
      for (const subject of grant.subjects) {
        if ('objectId' in subject) addTo(this.byObjectId, subject.objectId, grant);
        else addTo(this.byAppId, subject.appId, grant);
      }
    }
  }

  /** Every grant that names the caller's object ID or client ID; decide() checks the rest. */
  forCaller(caller: Pick<CallerIdentity, 'objectId' | 'appId'>): Grant[] {
    const byObject = grantsOf(this.byObjectId, caller.objectId);
    const byApp = caller.appId === undefined ? [] : grantsOf(this.byAppId, caller.appId.toLowerCase());
    if (byApp.length === 0) return byObject;
    if (byObject.length === 0) return byApp;
    return [...new Set([...byObject, ...byApp])];
  }
}

interface Snapshot {
  index: GrantIndex;
  /** The version row's ETag, read before the rows. */
  version: string;
  readAt: number;
}

/** Grants in Table Storage, one entity each, the document as JSON; read through a per-instance cache. */
export class GrantStore {
  private readonly cache: RefreshingCache<'all', GrantIndex>;
  private readonly ready: () => Promise<void>;
  private snapshot: Snapshot | undefined;
  private readonly now: () => number;

  constructor(
    private readonly table: TableClient,
    private readonly log: Logger,
    options: { now?: () => number } = {},
  ) {
    this.ready = tableReady(table);
    this.now = options.now ?? Date.now;
    this.cache = partitionCache((signal) => this.refresh(signal), this.now);
  }

  /** Every valid grant, from the cache (explain: why each grant does or does not apply). */
  async active(): Promise<Grant[]> {
    try {
      return (await this.cache.get('all')).all;
    } catch {
      throw unavailable();
    }
  }

  /** The grants that name this caller, from the cache. */
  async forCaller(caller: Pick<CallerIdentity, 'objectId' | 'appId'>): Promise<Grant[]> {
    try {
      return (await this.cache.get('all')).forCaller(caller);
    } catch {
      throw unavailable();
    }
  }

  async list(signal: AbortSignal = deadline()): Promise<StoredGrant[]> {
    return this.guard(async () => {
      const found: StoredGrant[] = [];
      for await (const entity of this.table.listEntities<GrantEntity>({ queryOptions: { filter: rowsOf(PARTITION) }, abortSignal: signal })) {
        const grant = this.parse(entity);
        if (grant) found.push({ grant, etag: entity.etag });
      }
      return found.sort((a, b) => (a.grant.id < b.grant.id ? -1 : 1));
    });
  }

  /** Every readable grant, held compactly, for the index: no ETags, only the columns the index needs. */
  private async readAll(signal: AbortSignal | undefined): Promise<Grant[]> {
    return this.guard(async () => {
      const found: Grant[] = [];
      const compact = compactor();
      const entities = this.table.listEntities<GrantEntity>({ queryOptions: { filter: rowsOf(PARTITION), select: ['RowKey', 'document'] }, abortSignal: signal });
      for await (const entity of entities) {
        const grant = this.parse(entity);
        if (grant) found.push(compact(grant));
      }
      return found.sort((a, b) => (a.id < b.id ? -1 : 1));
    });
  }

  async get(id: string): Promise<StoredGrant> {
    return this.guard(async () => {
      try {
        const entity = await this.table.getEntity<GrantEntity>(PARTITION, id, { abortSignal: deadline() });
        const grant = this.parse(entity);
        if (!grant) throw errors.notFound('grant-not-found', `Grant "${id}" is not readable.`);
        return { grant, etag: entity.etag };
      } catch (error) {
        if (azureStatus(error) === 404) throw errors.notFound('grant-not-found', `There is no grant "${id}".`);
        throw error;
      }
    });
  }

  async create(grant: Grant): Promise<StoredGrant> {
    return this.write(async () => {
      try {
        return { grant, etag: await writeVersioned(this.table, PARTITION, ['create', this.entity(grant)]) };
      } catch (error) {
        if (azureStatus(error) === 409) throw errors.conflict(`A grant with id "${grant.id}" already exists.`);
        throw error;
      }
    });
  }

  async replace(grant: Grant, etag: string): Promise<StoredGrant> {
    return this.write(async () => {
      try {
        return { grant, etag: await writeVersioned(this.table, PARTITION, ['update', this.entity(grant), 'Replace', { etag }]) };
      } catch (error) {
        throw this.conditional(error, grant.id);
      }
    });
  }

  async delete(id: string, etag: string): Promise<void> {
    await this.write(async () => {
      try {
        await deleteVersioned(this.table, PARTITION, id, etag);
      } catch (error) {
        throw this.conditional(error, id);
      }
    });
  }

  private conditional(error: unknown, id: string): unknown {
    const status = azureStatus(error);
    if (status === 404) return errors.notFound('grant-not-found', `There is no grant "${id}".`);
    if (status === 412) return errors.preconditionFailed(`Grant "${id}" has changed since that ETag; read it again.`);
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

  /** One point read when nothing changed; every grant only when the version row says something did. */
  private async refresh(signal: AbortSignal | undefined): Promise<GrantIndex> {
    const last = this.snapshot;
    // The first load reads the version too: one round trip at start-up, where an unknown version would
    // make the next refresh read every grant again (10,000 of them: about 300 ms of CPU in the
    // instance's first 15 s).
    const version = await this.guard(() => partitionVersion(this.table, PARTITION, signal));
    if (last && last.version === version && this.now() - last.readAt < FULL_READ_MS) return last.index;
    // Read after the version: a write in between is read now and seen again at the next refresh.
    const readAt = this.now();
    const index = new GrantIndex(await this.readAll(signal));
    this.snapshot = { index, version, readAt };
    return index;
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
