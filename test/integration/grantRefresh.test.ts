import type { TableClient } from '@azure/data-tables';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrantStore } from '../../src/grants/store.js';
import type { Grant } from '../../src/grants/model.js';
import { BrokerError } from '../../src/errors.js';
import { statusOf } from '../../src/http/problem.js';
import { jsonLineLogger } from '../../src/logger.js';
import { startAzurite, tablesConnectionString, type Azurite } from '../../src/sandbox/azurite.js';
import { createTableClient } from '../../src/tables.js';
import { startStallingProxy, type StallingProxy } from '../support/stallingProxy.js';

/**
 * Grants as two instances see them: one takes admin writes, the other refreshes its cache. A refresh
 * that finds nothing changed is one point read; a slow or hung table never stretches the 30 s promise.
 */
const log = jsonLineLogger(() => undefined);
const noCredential = { getToken: async () => null };

function grant(id: string, subjects: Grant['subjects']): Grant {
  return { id, subjects, registry: 'registry.test', repositories: [`${id}/**`], actions: ['pull'], enabled: true };
}

function clock() {
  let now = Date.now();
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

/** Records the URLs a client requests, with a pipeline policy on the real SDK client. */
function recorded(table: TableClient): { table: TableClient; urls: string[] } {
  const urls: string[] = [];
  table.pipeline.addPolicy({ name: 'record', sendRequest: (request, next) => (urls.push(decodeURIComponent(request.url)), next(request)) });
  return { table, urls };
}

describe('grant refresh', () => {
  let azurite: Azurite;
  let proxy: StallingProxy;
  let tableName: string;
  const client = (port: number) => createTableClient({ kind: 'connectionString', value: tablesConnectionString(port) }, tableName, noCredential);

  beforeAll(async () => {
    azurite = await startAzurite();
    proxy = await startStallingProxy({ host: '127.0.0.1', port: azurite.port });
  });
  afterAll(async () => {
    await proxy.close();
    await azurite.close();
  });

  it('reads one row when nothing changed, and every grant once an admin write moved the version', async () => {
    tableName = `grants${randomUUID().slice(0, 8)}`;
    const writer = new GrantStore(client(azurite.port), log);
    const time = clock();
    const reader = recorded(client(azurite.port));
    const other = new GrantStore(reader.table, log, { now: time.now });
    const caller = { objectId: randomUUID(), appId: randomUUID() };
    for (let i = 0; i < 30; i++) await writer.create(grant(`team-${i}`, [{ objectId: randomUUID() }]));
    await writer.create(grant('by-object', [{ objectId: caller.objectId }]));
    await writer.create(grant('by-both', [{ objectId: caller.objectId }, { appId: caller.appId }]));
    // A table some instance has already completed the subject rows of, as it is after the first day.
    await writer.completeSubjectRows();

    expect((await other.forCaller(caller)).map((g) => g.id).sort()).toEqual(['by-both', 'by-object']);
    // The start-up read took the version with the rows, so even the first refresh reads nothing more.
    for (let refresh = 0; refresh < 3; refresh++) {
      const before = reader.urls.length;
      time.advance(16_000);
      expect((await other.forCaller(caller)).map((g) => g.id).sort()).toEqual(['by-both', 'by-object']);
      // One point read of the version row; no query over the grants.
      expect(reader.urls.slice(before)).toEqual([expect.stringContaining("(PartitionKey='grant',RowKey='~version')")]);
    }

    // A revocation on the writer: the reader's next refresh sees it, without waiting for the backstop.
    const revoked = await writer.get('by-object');
    await writer.delete(revoked.grant, revoked.etag);
    await writer.create(grant('by-app', [{ appId: caller.appId }]));
    time.advance(16_000);
    expect((await other.forCaller(caller)).map((g) => g.id).sort()).toEqual(['by-app', 'by-both']);
    expect((await other.forCaller({ objectId: caller.objectId, appId: undefined })).map((g) => g.id)).toEqual(['by-both']);
    // The version row is bookkeeping, never a grant.
    expect((await writer.list()).map((stored) => stored.grant.id)).not.toContain('~version');
  });

  it('holds grants compactly and still exactly as stored: optional fields, several subjects, shared registries and actions', async () => {
    tableName = `grants${randomUUID().slice(0, 8)}`;
    const writer = new GrantStore(client(azurite.port), log);
    const caller = { objectId: randomUUID(), appId: randomUUID() };
    const full: Grant = {
      ...grant('full', [{ objectId: caller.objectId }, { appId: caller.appId }]),
      description: 'every optional field',
      repositories: ['full/a', 'full/b/**'],
      actions: ['pull', 'push'],
      maxTtlSeconds: 600,
      notAfter: '2099-01-01T00:00:00Z',
      enabled: false,
    };
    const plain = grant('plain', [{ objectId: caller.objectId }]);
    await writer.create(full);
    await writer.create(plain);
    const cached = await new GrantStore(client(azurite.port), log).active();
    expect(cached).toEqual([full, plain]);
    expect(cached).toEqual((await writer.list()).map((stored) => stored.grant));
  });

  it('keeps the 30 s promise while the table hangs: stale grants (quickly) until 30 s after the last load began, then 503 in bounded time', async () => {
    tableName = `grants${randomUUID().slice(0, 8)}`;
    const writer = new GrantStore(client(azurite.port), log);
    const caller = { objectId: randomUUID(), appId: undefined };
    await writer.create(grant('hung', [{ objectId: caller.objectId }]));
    const time = clock();
    const reader = new GrantStore(client(proxy.port), log, { now: time.now });
    expect((await reader.forCaller(caller)).map((g) => g.id)).toEqual(['hung']);

    proxy.stall();
    try {
      time.advance(20_000);
      // Within the promise the stale list answers after a short wait, leaving the request time for its audit write.
      let started = Date.now();
      expect((await reader.forCaller(caller)).map((g) => g.id)).toEqual(['hung']);
      expect(Date.now() - started).toBeLessThan(1500);
      time.advance(10_000);
      started = Date.now();
      const error = await reader.forCaller(caller).then(() => undefined, (failure: unknown) => failure);
      expect(Date.now() - started).toBeLessThan(5000);
      expect(error).toBeInstanceOf(BrokerError);
      expect(statusOf(error as BrokerError)).toBe(503);
    } finally {
      proxy.resume();
    }
    time.advance(1000);
    expect((await reader.forCaller(caller)).map((g) => g.id)).toEqual(['hung']);
  });
});
