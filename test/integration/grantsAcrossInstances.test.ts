import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrokerHost } from '../../src/sandbox/brokerHost.js';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { advanceClock, installShiftableClock } from '../support/clock.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';
import { startTableProxy, type TableProxy } from '../support/tableProxy.js';

/**
 * Admin writes on one instance reach another within the documented 15 s; while the other cannot
 * read grants and blocks it decides from its last lists for at most 15 s more (30 s in all), then
 * fails closed. The other instance reaches Table Storage through a proxy that can cut tables off;
 * its audit table stays reachable, so what it decides can be seen.
 */
installShiftableClock();
const REFRESH_MS = 15_000;
let h: Harness;
let proxy: TableProxy;
let other: BrokerHost;
let admin: string;

beforeAll(async () => {
  h = await startHarness();
  admin = await h.tokenFor(h.admin);
  proxy = await startTableProxy(h.sandbox.azurite.port);
  other = await h.startInstance({ tables: { kind: 'connectionString', value: proxy.connectionString } });
});
afterAll(async () => {
  await h?.close();
  await proxy?.close();
});

const adminCall = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  fetch(`${h.sandbox.broker.url}/api/v1/admin${path}`, {
    method,
    headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
const elsewhere = async (identity: ManagedIdentity) =>
  fetch(`${other.url}/api/v1/tokens`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${await h.tokenFor(identity)}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ registry: h.sandbox.registry.host, scopes: ['repository:acme/web:pull'] }),
  });
const grantFor = (id: string, identity: ManagedIdentity) => ({ id, subjects: [{ objectId: identity.objectId }], registry: h.sandbox.registry.host, repositories: ['acme/web'], actions: ['pull'] });

describe('admin writes reach another instance', () => {
  it('a new grant works there within 15 s, and a deleted one stops working there within 15 s', async () => {
    const caller = h.sandbox.identity('newcomer');
    expect((await elsewhere(caller)).status).toBe(403); // its grant list is now cached without the grant
    const created = await adminCall('POST', '/grants', grantFor('newcomer', caller));
    expect(created.status).toBe(201);
    advanceClock(REFRESH_MS);
    expect((await elsewhere(caller)).status).toBe(200);

    expect((await adminCall('DELETE', '/grants/newcomer', undefined, { 'If-Match': created.headers.get('etag')! })).status).toBe(204);
    advanceClock(REFRESH_MS);
    const revoked = await elsewhere(caller);
    expect(revoked.status).toBe(403);
    expect((await problemOf(revoked)).type).toBe('urn:registry-broker:problem:not-granted');
  });
});

describe('grants and blocks unreadable on that instance', () => {
  it('served from the last lists for 15 s more, then it fails closed, and recovers', async () => {
    const granted = h.sandbox.identity('granted');
    const blocked = h.sandbox.identity('blocked');
    expect((await adminCall('POST', '/grants', grantFor('granted', granted))).status).toBe(201);
    expect((await adminCall('POST', '/grants', grantFor('blocked', blocked))).status).toBe(201);
    expect((await adminCall('PUT', `/blocks/${blocked.objectId}`, { reason: 'test' })).status).toBe(200);
    advanceClock(REFRESH_MS);
    expect((await elsewhere(granted)).status).toBe(200); // both lists loaded now, with both changes
    expect((await elsewhere(blocked)).status).toBe(403);

    proxy.cutOff(['grants', 'blocks']);
    try {
      advanceClock(REFRESH_MS + 1000); // past the refresh: reloads fail, the last lists serve
      expect((await elsewhere(granted)).status).toBe(200);
      const stillBlocked = await elsewhere(blocked);
      expect(stillBlocked.status).toBe(403);
      expect((await problemOf(stillBlocked)).type).toBe('urn:registry-broker:problem:caller-blocked');

      advanceClock(REFRESH_MS); // 31 s after the last read: nothing is decided on older lists
      for (const identity of [granted, blocked]) {
        const closed = await elsewhere(identity);
        expect(closed.status).toBe(503);
        expect(closed.headers.get('retry-after')).toMatch(/^\d+$/);
        expect((await problemOf(closed)).type).toMatch(/^urn:registry-broker:problem:(block-list|grant-store)-unavailable$/);
      }
    } finally {
      proxy.cutOff([]);
    }
    expect((await elsewhere(granted)).status).toBe(200);
    expect((await elsewhere(blocked)).status).toBe(403);
  });
});
