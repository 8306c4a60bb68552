import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';

/**
 * Dependencies fail; the broker answers with the right status and never hands out a token it could
 * not audit. Short cache, stale and timeout settings keep this file quick.
 */
const TIMEOUT_SECONDS = 2;
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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
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
    const response = await pullWeb();
    expect(response.status).toBe(200);
    expect(h.sandbox.tokens.requests() - before).toBe(2);
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
    const started = Date.now();
    const response = await pullWeb();
    const elapsed = Date.now() - started;
    h.sandbox.tokens.setHang(false);
    expect(response.status).toBe(504);
    expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT_SECONDS * 1000 - 50);
    expect(elapsed).toBeLessThan(TIMEOUT_SECONDS * 1000 + 3000);
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
      await sleep(1200);
      const stale = await pullWeb();
      expect(stale.status).toBe(200);
      await sleep(3000);
      const expired = await pullWeb();
      expect(expired.status).toBe(503);
      expect(expired.headers.get('retry-after')).toMatch(/^\d+$/);
    } finally {
      h.sandbox.keyVault.setDown(false);
    }
  });

  it('with a cold cache: 503 with Retry-After and no token', async () => {
    h.sandbox.keyVault.setDown(true);
    try {
      const response = await pullWeb(COLD);
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
      const problem = await problemOf(response);
      expect(problem.type).toBe('urn:registry-broker:problem:key-vault-unavailable');
      expect(await auditOf(response)).toMatchObject({ outcome: 'failed', reason: 'key-vault-unavailable', status: 503 });
    } finally {
      h.sandbox.keyVault.setDown(false);
    }
  });

  it('a disabled secret stops issuance at the next read, without a stale fallback', async () => {
    expect((await pullWeb(COLD)).status).toBe(200);
    const [current] = h.sandbox.keyVault.versions('cold-registry');
    h.sandbox.keyVault.update('cold-registry', current!.version, { enabled: false });
    await sleep(1200);
    const response = await pullWeb(COLD);
    h.sandbox.keyVault.update('cold-registry', current!.version, { enabled: true });
    expect(response.status).toBe(503);
    expect((await problemOf(response)).type).toBe('urn:registry-broker:problem:credential-unavailable');
  });
});

describe('Table Storage unreachable', () => {
  it('503 with Retry-After and no token: the audit record could not be written', async () => {
    await pullWeb();
    await h.sandbox.azurite.close();
    const response = await pullWeb();
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
    const text = await response.text();
    expect(text).not.toMatch(/"token"/);
    expect(text).not.toMatch(/eyJ/);
    expect(JSON.parse(text)).toMatchObject({ status: 503 });
  });

  it('health reports the table store down', async () => {
    const response = await fetch(`${h.sandbox.broker.url}/api/v1/health`);
    expect(response.status).toBe(503);
    const problem = await problemOf(response);
    expect(problem.detail).toContain('tableStorage');
    expect(problem.detail).not.toContain('keyVault');
  });
});
