import { odata, type TableClient } from '@azure/data-tables';
import { setImmediate as yieldToIo } from 'node:timers/promises';
import { azureStatus, errors } from '../errors.js';
import { errorSummary, type Logger } from '../logger.js';
import type { RefreshingCache } from '../refreshingCache.js';
import type { CallerIdentity } from '../auth/callerToken.js';
import type { RepositoryScope } from '../registries/scope.js';
import { guarded, tableReady } from '../tableStore.js';
import { decide, type Decision } from './decision.js';
import { grantBodySchema, type Grant } from './model.js';
import { FULL_READ_MS, deadline, partitionCache, deleteVersioned, partitionVersion, rowsOf, writeVersioned } from './versionedTable.js';

/** How Table Storage spells an entity's version (the only ETags grants are given). */
const STORE_TAG = /^W\/"datetime'[^'"]+'"$/;

export interface StoredGrant {
  grant: Grant;
  etag: string;
}

const PARTITION = 'grant';

/**
 * One row per subject a grant names, key `o|<objectId>|<grantId>` or `a|<appId>|<grantId>`, so that
 * a cold instance finds a caller's grants with one range query instead of reading every grant (at
 * 10,000 grants that is 10 pages, and Azure Tables serves one partition about 2,000 entities a second).
 * A hint, not the truth: written before the grant and removed after it, so a row is missing only
 * after a race (a delete's clean-up removing the rows of a grant re-created meanwhile) or a write by
 * an older version, and a row left over names a grant that does not back it. Decisions never rest
 * on the rows: each grant they name is read afresh and decide() checks it, and only the full list
 * may deny, so a missing row costs that caller a cold instance's full read, as before.
 */
const SUBJECTS = 'subject';
/** In the subject partition, once every grant has its rows; `~` sorts after every subject row. */
const SUBJECTS_COMPLETE = '~complete';
const YIELD_EVERY = 100;
const FULL_READ_DELAY_MS = 1000;
/** An entity-group transaction's limit. */
const TRANSACTION_ROWS = 100;
/** A caller named by more grants than this is decided from the full list. */
const OWN_GRANTS_MAX = 25;
/** How long the cold lookup may take before the full list decides instead (a cold denial waits for both). */
const OWN_GRANTS_MS = 1000;

type Caller = Pick<CallerIdentity, 'objectId' | 'appId'>;

function subjectPrefix(kind: 'o' | 'a', id: string): string {
  return `${kind}|${id}|`;
}

function subjectKeys(grant: Grant): string[] {
  return [...new Set(grant.subjects.map((subject) => ('objectId' in subject ? subjectPrefix('o', subject.objectId) : subjectPrefix('a', subject.appId)) + grant.id))];
}

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
  private fullReadScheduled = false;
  private readonly ownLookups = new Map<string, Promise<Grant[] | undefined>>();
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
  async forCaller(caller: Caller): Promise<Grant[]> {
    try {
      return (await this.cache.get('all')).forCaller(caller);
    } catch {
      throw unavailable();
    }
  }

  /**
   * Whether these grants allow the request (decide()). Until this instance has read every grant once,
   * it first reads the caller's own: current grants that name the caller allow nothing the full list
   * would not, so when they allow the request that is the answer; only the full list can deny. The
   * full read then waits FULL_READ_DELAY_MS, out of the way of a cold instance's first answers (its
   * pages cost the broker ~20 ms of CPU each, and the table time).
   */
  async decision(caller: CallerIdentity, registry: string, scopes: RepositoryScope[], now: Date): Promise<Decision> {
    if (!this.snapshot) {
      const own = await this.ownGrants(caller);
      const quick = own && decide(caller, registry, scopes, own, now);
      if (quick?.allowed) {
        this.readAllSoon();
        return quick;
      }
    }
    return decide(caller, registry, scopes, await this.forCaller(caller), now);
  }

  private readAllSoon(): void {
    if (this.fullReadScheduled) return;
    this.fullReadScheduled = true;
    // A failed read is scheduled again by the next such answer: otherwise the instance would look up
    // every caller's own grants for good and never decide from the cache.
    const read = () => void this.active().catch(() => (this.fullReadScheduled = false));
    setTimeout(read, FULL_READ_DELAY_MS).unref();
  }

  /**
   * The caller's grants from their subject rows and one point read each; undefined when that cannot
   * say. Concurrent requests of one caller share a lookup: a cold instance hit by a build's burst asks
   * the table once, not once per request.
   */
  private ownGrants(caller: Caller): Promise<Grant[] | undefined> {
    const key = `${caller.objectId}|${caller.appId ?? ''}`;
    const pending = this.ownLookups.get(key);
    if (pending) return pending;
    const lookup = this.lookUpOwnGrants(caller).finally(() => this.ownLookups.delete(key));
    this.ownLookups.set(key, lookup);
    return lookup;
  }

  private async lookUpOwnGrants(caller: Caller): Promise<Grant[] | undefined> {
    const signal = AbortSignal.timeout(OWN_GRANTS_MS);
    try {
      const prefixes = [subjectPrefix('o', caller.objectId), ...(caller.appId === undefined ? [] : [subjectPrefix('a', caller.appId.toLowerCase())])];
      const ids = new Set<string>();
      for (const rows of await Promise.all(prefixes.map((prefix) => this.subjectRows(prefix, signal)))) {
        for (const rowKey of rows) ids.add(rowKey.slice(rowKey.indexOf('|', 2) + 1));
      }
      if (ids.size === 0 || ids.size > OWN_GRANTS_MAX) return undefined;
      const grants = await Promise.all([...ids].map((id) => this.pointRead(id, signal)));
      // A grant that no longer names the caller is in the list too; decide() checks the subjects.
      return grants.filter((grant): grant is Grant => grant !== undefined);
    } catch {
      return undefined;
    }
  }

  private async subjectRows(prefix: string, signal: AbortSignal): Promise<string[]> {
    // `}` follows `|`: the range is exactly the keys that start with the prefix.
    const filter = odata`PartitionKey eq ${SUBJECTS} and RowKey ge ${prefix} and RowKey lt ${`${prefix.slice(0, -1)}}`}`;
    const keys: string[] = [];
    for await (const entity of this.table.listEntities({ queryOptions: { filter, select: ['RowKey'] }, abortSignal: signal })) {
      keys.push(entity.rowKey!);
      if (keys.length > OWN_GRANTS_MAX) break;
    }
    return keys;
  }

  private async pointRead(id: string, signal: AbortSignal): Promise<Grant | undefined> {
    try {
      return this.parse(await this.table.getEntity<GrantEntity>(PARTITION, id, { abortSignal: signal }));
    } catch (error) {
      if (azureStatus(error) === 404) return undefined;
      throw error;
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
      let parsed = 0;
      for await (const entity of entities) {
        const grant = this.parse(entity);
        if (grant) found.push(compact(grant));
        // A page of 1,000 grants takes ~20 ms to parse: requests waiting on I/O meanwhile get their turn.
        if (++parsed % YIELD_EVERY === 0) await yieldToIo();
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
      await this.indexSubjects(subjectKeys(grant));
      try {
        return { grant, etag: await writeVersioned(this.table, PARTITION, ['create', this.entity(grant)]) };
      } catch (error) {
        if (azureStatus(error) === 409) throw errors.conflict(`A grant with id "${grant.id}" already exists.`);
        throw error;
      }
    });
  }

  /** `current`: the grant as the caller read it before (the admin audit's "before"), whose subject rows go if the new one drops them. */
  async replace(grant: Grant, etag: string, current: Grant): Promise<StoredGrant> {
    this.checkTag(etag, grant.id);
    return this.write(async () => {
      const before = subjectKeys(current);
      const after = subjectKeys(grant);
      await this.indexSubjects(after);
      let stored: StoredGrant;
      try {
        stored = { grant, etag: await writeVersioned(this.table, PARTITION, ['update', this.entity(grant), 'Replace', { etag }]) };
      } catch (error) {
        throw this.conditional(error, grant.id);
      }
      await this.unindexSubjects(before.filter((key) => !after.includes(key)));
      return stored;
    });
  }

  /** `current`: the grant as the caller read it before; its subject rows go with it. */
  async delete(current: Grant, etag: string): Promise<void> {
    this.checkTag(etag, current.id);
    await this.write(async () => {
      try {
        await deleteVersioned(this.table, PARTITION, current.id, etag);
      } catch (error) {
        throw this.conditional(error, current.id);
      }
      await this.unindexSubjects(subjectKeys(current));
    });
  }

  /** Before the grant is written: a grant's at most 100 subjects fit one transaction (TRANSACTION_ROWS). */
  private async indexSubjects(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.table.submitTransaction(
      keys.map((rowKey) => ['upsert', { partitionKey: SUBJECTS, rowKey }, 'Replace']),
      { abortSignal: deadline() },
    );
  }

  /**
   * After the grant is written. One by one, since a transaction fails whole on a row already gone; a
   * row left behind costs a cold lookup one point read, so a failure is logged and not the admin's.
   */
  private async unindexSubjects(keys: string[]): Promise<void> {
    const results = await Promise.allSettled(
      keys.map((rowKey) =>
        this.table.deleteEntity(SUBJECTS, rowKey, { abortSignal: deadline() }).catch((error: unknown) => {
          if (azureStatus(error) !== 404) throw error;
        }),
      ),
    );
    const failed = results.filter((result) => result.status === 'rejected').length;
    if (failed > 0) this.log.warn('subject rows of a grant could not be removed', { rows: failed });
  }

  /**
   * The ETags grants carry are Table Storage's, `W/"datetime'…'"`. Any other tag cannot be a grant's
   * current version, so it is stale (412) here; sent on, Table Storage would refuse it as malformed
   * (400), which is no outage.
   */
  private checkTag(etag: string, id: string): void {
    if (!STORE_TAG.test(etag)) throw errors.preconditionFailed(`That is not an ETag of grant "${id}"; read it again and send the ETag its GET answered, as it is.`);
  }

  private conditional(error: unknown, id: string): unknown {
    const status = azureStatus(error);
    if (status === 404) return errors.notFound('grant-not-found', `There is no grant "${id}".`);
    // 400: a tag the store cannot parse, which is not this grant's version either.
    if (status === 412 || status === 400) return errors.preconditionFailed(`Grant "${id}" has changed since that ETag; read it again.`);
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
    // The marker only decides whether to write older grants' rows: a failure to tell is no reason to fail the read.
    const [grants, complete] = await Promise.all([this.readAll(signal), last ? true : this.subjectRowsComplete(signal).catch(() => true)]);
    const index = new GrantIndex(grants);
    this.snapshot = { index, version, readAt };
    if (!complete) {
      this.completeSubjectRows(grants).then(
        () => {
          if (grants.length > 0) this.log.info('grant subject rows written for grants stored before them', { grants: grants.length });
        },
        (error: unknown) => this.log.warn('grant subject rows could not be written; cold instances read every grant until they are', { error: errorSummary(error) }),
      );
    }
    return index;
  }

  private async subjectRowsComplete(signal: AbortSignal | undefined): Promise<boolean> {
    try {
      await this.table.getEntity(SUBJECTS, SUBJECTS_COMPLETE, { abortSignal: signal, queryOptions: { select: ['RowKey'] } });
      return true;
    } catch (error) {
      if (azureStatus(error) === 404) return false;
      throw error;
    }
  }

  /**
   * Writes the subject rows of every grant (those stored before the rows existed have none), then the
   * marker row that says so; an instance whose first full read finds no marker does this in the
   * background. Until then a cold instance decides for those grants' callers from the full list.
   */
  async completeSubjectRows(grants?: Grant[]): Promise<void> {
    const keys = (grants ?? (await this.active())).flatMap(subjectKeys);
    for (let at = 0; at < keys.length; at += TRANSACTION_ROWS) await this.indexSubjects(keys.slice(at, at + TRANSACTION_ROWS));
    await this.table.upsertEntity({ partitionKey: SUBJECTS, rowKey: SUBJECTS_COMPLETE, writtenAt: new Date() }, 'Replace', { abortSignal: deadline() });
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
