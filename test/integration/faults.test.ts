import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrokerHost } from '../../src/sandbox/brokerHost.js';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { advanceClock, installShiftableClock } from '../support/clock.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';
import { startTableProxy, type TableProxy } from '../support/tableProxy.js';

/**
 * Dependencies fail; the broker answers with the right status and never hands out a token it could
 * not audit. Cache windows are crossed by moving the clock, not by waiting; the upstream deadline is
 * long enough that retries and a 1 s Retry-After fit in it on a slow machine.
 */
installShiftableClock();
const TIMEOUT_SECONDS = 4;
const COLD = 'cold.registry.test';
let h: Harness;
let caller: ManagedIdentity;

beforeAll(async () => {
  h = await startHarness({
    registryTimeoutSeconds: TIMEOUT_SECONDS,
    env: { CREDENTIAL_CACHE_SECONDS: '1', CREDENTIAL_STALE_SECONDS: '3' },
    extraRegistries: [{ host: COLD, credentialSecret: 'cold-registry' }],
  });
  caller = h.sandbox.identity('workload');
  await h.grant({ id: 'web', subjects: [{ objectId: caller.objectId }], repositories: ['acme/**'], actions: ['pull'] });
  await h.grant({ id: 'cold', registry: COLD, subjects: [{ objectId: caller.objectId }], repositories: ['acme/**'], actions: ['pull'] });
});
afterAll(() => h?.close());

// A fresh repository each time, so no upstream token is reused and every call reaches the token server.
let repositories = 0;
const pullWeb = (registry?: string) => h.requestToken(caller, [`repository:acme/r${++repositories}:pull`], registry);

async function auditOf(response: Response) {
  const requestId = response.headers.get('x-request-id');
  return (await h.auditRecords()).find((r) => r.requestId === requestId);
}

describe('upstream token service', () => {
  it('answers 500 once: one retry succeeds', async () => {
    const before = h.sandbox.tokens.requests();
    h.sandbox.tokens.failNext(1, 500);
    const response = await pullWeb();
    expect(response.status).toBe(200);
    expect(h.sandbox.tokens.requests() - before).toBe(2);
  });

  it('answers 429 with Retry-After once: the broker waits and succeeds', async () => {
    const before = h.sandbox.tokens.requests();
    h.sandbox.tokens.failNext(1, 429, 1);
    const started = performance.now();
    const response = await pullWeb();
    expect(response.status).toBe(200);
    expect(h.sandbox.tokens.requests() - before).toBe(2);
    // Retry-After: 1 was honoured, not replaced by the 100 ms backoff.
    expect(performance.now() - started).toBeGreaterThanOrEqual(990);
  });

  it('keeps failing: 502 after bounded retries, audited as failed', async () => {
    const before = h.sandbox.tokens.requests();
    h.sandbox.tokens.failNext(10, 503);
    const response = await pullWeb();
    h.sandbox.tokens.failNext(0, 500);
    expect(response.status).toBe(502);
    expect((await problemOf(response)).detail).not.toMatch(/injected failure/);
    expect(h.sandbox.tokens.requests() - before).toBe(3);
    expect(await auditOf(response)).toMatchObject({ outcome: 'failed', reason: 'upstream-error', status: 502 });
  });

  it('hangs: 504 within the configured timeout', async () => {
    h.sandbox.tokens.setHang(true);
    const started = performance.now();
    const response = await pullWeb();
    const elapsed = performance.now() - started;
    h.sandbox.tokens.setHang(false);
    expect(response.status).toBe(504);
    expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT_SECONDS * 1000 - 50);
    // One deadline for the whole call: a retry after the timeout would take twice as long.
    expect(elapsed).toBeLessThan(TIMEOUT_SECONDS * 1000 * 1.75);
    expect(await auditOf(response)).toMatchObject({ outcome: 'failed', reason: 'upstream-timeout', status: 504 });
  });

  it('refuses the stored credential: 502 that says so, without the credential', async () => {
    h.sandbox.tokens.removePassword('registry-broker', h.sandbox.registryPassword);
    const response = await pullWeb();
    h.sandbox.tokens.addAccount('registry-broker', h.sandbox.registryPassword);
    expect(response.status).toBe(502);
    const problem = await problemOf(response);
    expect(problem.type).toBe('urn:registry-broker:problem:upstream-refused');
    expect(JSON.stringify(problem)).not.toContain(h.sandbox.registryPassword);
  });
});

describe('Key Vault down', () => {
  it('with a warm cache: still issues within the stale window, then 503 once it has passed', async () => {
    expect((await pullWeb()).status).toBe(200);
    h.sandbox.keyVault.setDown(true);
    try {
      // Cache 1 s, stale window 3 s more: at 1.2 s the stale credential serves, at 4.2 s it no longer does.
      advanceClock(1200);
      const kvRequests = h.sandbox.keyVault.requests();
      const stale = await pullWeb();
      expect(stale.status).toBe(200);
      expect(h.sandbox.keyVault.requests()).toBeGreaterThan(kvRequests);
      advanceClock(3000);
      const expired = await pullWeb();
      expect(expired.status).toBe(503);
      expect(expired.headers.get('retry-after')).toMatch(/^\d+$/);
      expect((await problemOf(expired)).type).toBe('urn:registry-broker:problem:key-vault-unavailable');
      expect(await auditOf(expired)).toMatchObject({ outcome: 'failed', reason: 'key-vault-unavailable', status: 503 });
    } finally {
      h.sandbox.keyVault.setDown(false);
    }
  });

  it('with a cold cache: 503 with Retry-After and no token', async () => {
    h.sandbox.keyVault.setDown(true);
    try {
      const mints = h.sandbox.tokens.requests();
      const response = await pullWeb(COLD);
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
      const problem = await problemOf(response);
      expect(problem.type).toBe('urn:registry-broker:problem:key-vault-unavailable');
      // No token: none in the answer, and none was even asked for upstream.
      expect(problem).not.toHaveProperty('token');
      expect(JSON.stringify(problem)).not.toMatch(/eyJ/);
      expect(h.sandbox.tokens.requests()).toBe(mints);
      expect(await auditOf(response)).toMatchObject({ outcome: 'failed', reason: 'key-vault-unavailable', status: 503 });
    } finally {
      h.sandbox.keyVault.setDown(false);
    }
  });

  it('a disabled secret stops issuance at the next read, without a stale fallback', async () => {
    expect((await pullWeb(COLD)).status).toBe(200);
    const [current] = h.sandbox.keyVault.versions('cold-registry');
    h.sandbox.keyVault.update('cold-registry', current!.version, { enabled: false });
    advanceClock(1200);
    const response = await pullWeb(COLD);
    h.sandbox.keyVault.update('cold-registry', current!.version, { enabled: true });
    expect(response.status).toBe(503);
    expect((await problemOf(response)).type).toBe('urn:registry-broker:problem:credential-unavailable');
  });
});

describe('Table Storage unreachable', () => {
  // Another instance reaches Table Storage through a proxy that can cut it off; nothing else is touched.
  let proxy: TableProxy;
  let other: BrokerHost;
  beforeAll(async () => {
    proxy = await startTableProxy(h.sandbox.azurite.port);
    other = await h.startInstance({ tables: { kind: 'connectionString', value: proxy.connectionString } });
  });
  afterAll(() => proxy?.close());
  const pullThere = async () =>
    fetch(`${other.url}/api/v1/tokens`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${await h.tokenFor(caller)}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ registry: h.sandbox.registry.host, scopes: [`repository:acme/r${++repositories}:pull`] }),
    });

  it('503 with Retry-After and no token: the audit record could not be written; then service resumes', async () => {
    expect((await pullThere()).status).toBe(200);
    // A new instance answers its first requests from the caller's own grants and reads every grant
    // about a second later; after that, grants, blocks and the credential are cached and only the
    // audit write can fail.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    proxy.cutOff('all');
    let response: Response;
    const mints = h.sandbox.tokens.requests();
    try {
      response = await pullThere();
    } finally {
      proxy.cutOff([]);
    }
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
    // A token was minted upstream, and withheld.
    expect(h.sandbox.tokens.requests()).toBe(mints + 1);
    const text = await response.text();
    expect(text).not.toMatch(/"token"/);
    expect(text).not.toMatch(/eyJ/);
    expect(JSON.parse(text)).toMatchObject({ status: 503, type: 'urn:registry-broker:problem:audit-unavailable' });
    expect((await pullThere()).status).toBe(200);
  });

  it('health reports the table store down, and only it', async () => {
    proxy.cutOff('all');
    try {
      const response = await fetch(`${other.url}/api/v1/health`);
      expect(response.status).toBe(503);
      expect(await problemOf(response)).toMatchObject({ detail: 'Down: tableStorage.', errors: [{ path: 'tableStorage', message: 'unreachable' }] });
    } finally {
      proxy.cutOff([]);
    }
  });
});
