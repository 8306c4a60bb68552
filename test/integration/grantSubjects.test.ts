import type { TableClient } from '@azure/data-tables';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CallerIdentity } from '../../src/auth/callerToken.js';
import type { Grant } from '../../src/grants/model.js';
import { GrantStore } from '../../src/grants/store.js';
import { jsonLineLogger } from '../../src/logger.js';
import { startAzurite, tablesConnectionString, type Azurite } from '../../src/sandbox/azurite.js';
import { createTableClient } from '../../src/tables.js';

/**
 * Issue 14, cold start at 10,000 grants: a cold instance decides from the caller's own grants (found
 * through their subject rows) instead of reading every grant first; only the full list may deny.
 * Real Azurite, the real SDK client; what the table holds and what each instance asks of it.
 */
const log = jsonLineLogger(() => undefined);
const noCredential = { getToken: async () => null };
const REGISTRY = 'registry.test';

function grant(id: string, subjects: Grant['subjects'], extra: Partial<Grant> = {}): Grant {
  return { id, subjects, registry: REGISTRY, repositories: [`${id}/**`], actions: ['pull'], enabled: true, ...extra };
}

function caller(objectId = randomUUID()): CallerIdentity {
  return { tenantId: randomUUID(), objectId, appId: randomUUID(), roles: [], tokenVersion: '2.0' };
}
/** A token without `appid`/`azp`: the object ID alone. */
const byObjectIdOnly = (objectId = randomUUID()): CallerIdentity => ({ ...caller(objectId), appId: undefined });

const pull = (repository: string) => [{ repository, actions: ['pull' as const] }];

describe('a cold instance and the caller’s own grants', () => {
  let azurite: Azurite;
  let tableName: string;
  let raw: TableClient;
  let writer: GrantStore;
  let urls: string[];

  const client = () => createTableClient({ kind: 'connectionString', value: tablesConnectionString(azurite.port) }, tableName, noCredential);
  /** A new instance whose every request to the table is recorded. */
  function coldInstance(): GrantStore {
    const table = client();
    // This test's list: an instance's background reads never land in the next test's.
    const into = urls;
    table.pipeline.addPolicy({ name: 'record', sendRequest: (request, next) => (into.push(decodeURIComponent(request.url)), next(request)) });
    return new GrantStore(table, log);
  }
  const fullReads = () => urls.filter((url) => url.includes("PartitionKey eq 'grant'"));
  async function subjectRows(): Promise<string[]> {
    const keys: string[] = [];
    for await (const entity of raw.listEntities({ queryOptions: { filter: "PartitionKey eq 'subject'" } })) keys.push(entity.rowKey!);
    return keys.sort();
  }

  beforeAll(async () => {
    azurite = await startAzurite();
  });
  afterAll(() => azurite.close());
  beforeEach(async () => {
    tableName = `grants${randomUUID().slice(0, 8)}`;
    raw = client();
    await raw.createTable();
    writer = new GrantStore(client(), log);
    urls = [];
  });

  it('allows from the caller’s own grants without reading every grant, then reads them all in the background', async () => {
    const ci = caller();
    for (let i = 0; i < 40; i++) await writer.create(grant(`team-${i}`, [{ objectId: randomUUID() }]));
    await writer.create(grant('by-object', [{ objectId: ci.objectId }], { maxTtlSeconds: 600 }));
    await writer.create(grant('by-app', [{ appId: ci.appId! }], { repositories: ['shared/**'] }));

    const cold = coldInstance();
    expect(await cold.decision(ci, REGISTRY, [...pull('by-object/web'), ...pull('shared/base')], new Date())).toEqual({
      allowed: true,
      grantIds: ['by-app', 'by-object'],
      maxTtlSeconds: 600,
    });
    expect(fullReads()).toEqual([]);
    // Two range queries (object ID, client ID) and a point read per grant found.
    expect(urls.filter((url) => url.includes("PartitionKey eq 'subject'"))).toHaveLength(2);
    expect(urls.filter((url) => /\(PartitionKey='grant',RowKey='by-(object|app)'\)/.test(url))).toHaveLength(2);

    // The full read follows about a second later, and then the cache decides.
    await expect.poll(() => fullReads().length, { timeout: 5000 }).toBeGreaterThan(0);
    await expect.poll(async () => (await cold.decision(ci, REGISTRY, pull('by-object/web'), new Date())).allowed).toBe(true);
    const before = urls.length;
    expect((await cold.decision(ci, REGISTRY, pull('by-object/web'), new Date())).allowed).toBe(true);
    expect(urls.slice(before)).toEqual([]);
  });

  it('tries a failed background full read again at the next cold answer, so the cache takes over', async () => {
    const ci = caller();
    await writer.create(grant('retry', [{ objectId: ci.objectId }]));
    let failing = true;
    const table = client();
    const into = urls;
    table.pipeline.addPolicy({
      name: 'fail full reads',
      sendRequest: async (request, next) => {
        const url = decodeURIComponent(request.url);
        into.push(url);
        if (failing && url.includes("RowKey='~version'")) throw new Error('the table is unavailable');
        return next(request);
      },
    });
    const cold = new GrantStore(table, log);
    const versionReads = () => urls.filter((url) => url.includes("RowKey='~version'")).length;
    expect((await cold.decision(ci, REGISTRY, pull('retry/app'), new Date())).allowed).toBe(true);
    await expect.poll(versionReads, { timeout: 5000 }).toBeGreaterThan(0);
    failing = false;
    expect((await cold.decision(ci, REGISTRY, pull('retry/app'), new Date())).allowed).toBe(true);
    await expect.poll(() => fullReads().length, { timeout: 5000 }).toBeGreaterThan(0);
    // Once that read is in, a decision asks the table nothing.
    const requestsOfADecision = async () => {
      const before = urls.length;
      expect((await cold.decision(ci, REGISTRY, pull('retry/app'), new Date())).allowed).toBe(true);
      return urls.length - before;
    };
    await expect.poll(requestsOfADecision, { timeout: 5000 }).toBe(0);
  });

  it('asks the table once for a burst of one caller’s requests', async () => {
    const ci = byObjectIdOnly();
    await writer.create(grant('burst', [{ objectId: ci.objectId }]));
    const cold = coldInstance();
    const decisions = await Promise.all(Array.from({ length: 20 }, () => cold.decision(ci, REGISTRY, pull('burst/app'), new Date())));
    expect(decisions.every((decision) => decision.allowed)).toBe(true);
    expect(urls.filter((url) => url.includes("PartitionKey eq 'subject'"))).toHaveLength(1);
    expect(urls.filter((url) => url.includes("RowKey='burst'"))).toHaveLength(1);
    expect(fullReads()).toEqual([]);
  });

  it('denies only from the full list, which still finds grants without subject rows', async () => {
    const ci = caller();
    await writer.create(grant('own', [{ objectId: ci.objectId }]));
    // A grant stored before subject rows existed: the entity alone.
    const legacy = grant('legacy', [{ objectId: ci.objectId }], { actions: ['pull', 'push'] });
    await raw.createEntity({ partitionKey: 'grant', rowKey: legacy.id, document: JSON.stringify(legacy) });

    const cold = coldInstance();
    const decision = await cold.decision(ci, REGISTRY, [{ repository: 'legacy/app', actions: ['pull', 'push'] }], new Date());
    expect(decision).toEqual({ allowed: true, grantIds: ['legacy'], maxTtlSeconds: undefined });
    expect(fullReads().length).toBeGreaterThan(0);

    const stranger = coldInstance();
    expect(await stranger.decision(caller(), REGISTRY, pull('own/app'), new Date())).toEqual({ allowed: false, notGranted: ['repository:own/app:pull'] });
  });

  it('never allows from a subject row its grant no longer backs: deleted, subject removed, disabled', async () => {
    const ci = byObjectIdOnly();
    await writer.create(grant('gone', [{ objectId: ci.objectId }]));
    await writer.create(grant('moved', [{ objectId: ci.objectId }]));
    await writer.create(grant('off', [{ objectId: ci.objectId }]));
    const [gone, moved, off] = await Promise.all(['gone', 'moved', 'off'].map((id) => writer.get(id)));
    await writer.delete(gone!.grant, gone!.etag);
    await writer.replace(grant('moved', [{ objectId: randomUUID() }]), moved!.etag, moved!.grant);
    await writer.replace(grant('off', [{ objectId: ci.objectId }], { enabled: false }), off!.etag, off!.grant);
    // Rows a failed step could leave behind: they name the caller, their grants do not (or are gone).
    for (const id of ['gone', 'moved']) await raw.upsertEntity({ partitionKey: 'subject', rowKey: `o|${ci.objectId}|${id}` });

    for (const id of ['gone', 'moved', 'off']) {
      const cold = coldInstance();
      expect((await cold.decision(ci, REGISTRY, pull(`${id}/app`), new Date())).allowed, id).toBe(false);
    }
  });

  it('admin writes keep the rows: one per subject, moved by a replace, gone with the grant', async () => {
    const [a, b, app] = [randomUUID(), randomUUID(), randomUUID()];
    await writer.create(grant('team', [{ objectId: a }, { appId: app }, { objectId: a }]));
    expect(await subjectRows()).toEqual([`a|${app}|team`, `o|${a}|team`].sort());
    const first = await writer.get('team');
    await writer.replace(grant('team', [{ objectId: b }, { appId: app }]), first.etag, first.grant);
    expect(await subjectRows()).toEqual([`a|${app}|team`, `o|${b}|team`].sort());
    // A replace that loses the race may leave a row its grant does not back, which allows nothing.
    await expect(writer.replace(grant('team', [{ objectId: a }]), first.etag, first.grant)).rejects.toMatchObject({ code: 'precondition-failed' });
    expect((await coldInstance().decision(byObjectIdOnly(a), REGISTRY, pull('team/app'), new Date())).allowed).toBe(false);
    const last = await writer.get('team');
    await writer.delete(last.grant, last.etag);
    expect((await subjectRows()).filter((key) => key.endsWith('|team') && !key.startsWith(`o|${a}|`))).toEqual([]);
    // The version row and the subject rows are bookkeeping, never grants.
    expect((await writer.list()).map((stored) => stored.grant.id)).toEqual([]);
  });

  it('writes the rows of grants stored before them at the first full read, even after a newer grant has its own, and only once', async () => {
    const ci = byObjectIdOnly();
    for (const id of ['old-1', 'old-2']) {
      const old = grant(id, [{ objectId: ci.objectId }, { objectId: randomUUID() }]);
      await raw.createEntity({ partitionKey: 'grant', rowKey: id, document: JSON.stringify(old) });
    }
    // Saved after the upgrade, before any instance read every grant: it has its rows, the older ones not.
    const newer = randomUUID();
    await writer.create(grant('newer', [{ objectId: newer }]));
    expect(await subjectRows()).toEqual([`o|${newer}|newer`]);

    await new GrantStore(client(), log).active();
    await expect.poll(async () => (await subjectRows()).length).toBe(6);
    expect(await subjectRows()).toContain('~complete');

    const cold = coldInstance();
    expect((await cold.decision(ci, REGISTRY, pull('old-2/app'), new Date())).allowed).toBe(true);
    expect(fullReads()).toEqual([]);
    // With the marker there, an instance's first full read writes nothing.
    await expect.poll(() => fullReads().length, { timeout: 5000 }).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(urls.filter((url) => url.includes('$batch') || url.includes("RowKey='~complete'") && !url.includes('$select'))).toEqual([]);
  });
});
