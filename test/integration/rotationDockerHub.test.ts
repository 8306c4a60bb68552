import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotationTimer } from '../../src/functions/rotationTimer.js';
import { jsonLineLogger } from '../../src/logger.js';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';
import { credentialWorks, graceMinutes, offsetClock, rotationTrail, storedCredential } from '../support/rotation.js';

/**
 * Docker Hub access-token rotation through the real engine, Key Vault stand-in and Docker Hub API
 * stand-in, whose tokens are what the registry token server accepts.
 */
const clock = offsetClock();
let h: Harness;
let caller: ManagedIdentity;
let host: string;
let repo = 0;
const issue = () => h.requestToken(caller, [`repository:acme/r${++repo}:pull`]);
const logs: string[] = [];
const timerLog = jsonLineLogger((line) => logs.push(line));

beforeAll(async () => {
  h = await startHarness({
    rotation: 'dockerhub',
    rotationOverrides: { now: clock.now },
    env: { CREDENTIAL_CACHE_SECONDS: '1' },
    extraRegistries: [{ host: 'unmanaged.registry.test', credentialSecret: 'unmanaged' }],
  });
  caller = h.sandbox.identity('workload');
  host = h.sandbox.registry.host;
  await h.grant({ id: 'all', subjects: [{ objectId: caller.objectId }], repositories: ['acme/**'], actions: ['pull'] });
});
afterAll(() => h?.close());

/**
 * One caller asking for tokens back to back. `answered(n)` waits until n more requests have been
 * answered, so the test paces itself by what traffic has done, never by how fast the machine is.
 */
function startTraffic() {
  const answers: { requestId: string | null; status: number }[] = [];
  const waiting: (() => void)[] = [];
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      const response = await issue().catch(() => undefined);
      await response?.body?.cancel();
      answers.push({ requestId: response?.headers.get('x-request-id') ?? null, status: response?.status ?? 0 });
      for (const wake of waiting.splice(0)) wake();
    }
  })();
  return {
    answers,
    answered: (n: number) =>
      new Promise<void>((resolve) => {
        const target = answers.length + n;
        const check = () => (answers.length >= target ? resolve() : waiting.push(check));
        check();
      }),
    stop: async () => {
      stop = true;
      await loop;
    },
  };
}

describe('a rotation while callers keep asking for tokens', () => {
  it('issues with the new credential, keeps the old one working through the grace period, then revokes it; no caller sees an error', async () => {
    const old = storedCredential(h);
    const traffic = startTraffic();
    // Paced by traffic: some requests are answered while the rotation is under way (after verify,
    // before the switch), and some are sent only after the new version is stored. The second of
    // two answers after a step was sent after it.
    const engine = h.sandbox.rotationEngine({
      now: clock.now,
      afterStep: async (step) => {
        if (step === 'verify' || step === 'store' || step === 'revoke') await traffic.answered(2);
      },
    });

    const report = await engine.rotate(host, { force: true });
    expect(report).toMatchObject({ registry: host, outcome: 'in-grace', step: 'stored' });
    const current = storedCredential(h);
    expect(current.version).not.toBe(old.version);
    expect(current.password).not.toBe(old.password);
    expect(current.tags.credentialRef).toBeTruthy();

    // This instance switched at once; the old credential still works for tokens and caches elsewhere.
    const after = await issue();
    expect(after.status).toBe(200);
    const record = (await h.auditRecords()).find((r) => r.requestId === after.headers.get('x-request-id'));
    expect(record?.credentialVersion).toBe(current.version);
    expect(await credentialWorks(h, old.username, old.password)).toBe(true);
    expect(await credentialWorks(h, current.username, current.password)).toBe(true);

    // Before the grace period is over the timer leaves the old credential alone.
    clock.advanceMinutes(graceMinutes(h) - 1);
    await rotationTimer.run(h.sandbox.services, timerLog);
    expect(await credentialWorks(h, old.username, old.password)).toBe(true);

    clock.advanceMinutes(2);
    await rotationTimer.run(h.sandbox.services, timerLog);
    expect(await credentialWorks(h, old.username, old.password)).toBe(false);
    expect(await credentialWorks(h, current.username, current.password)).toBe(true);
    expect(h.sandbox.dockerHub!.activeTokens().map((t) => t.token)).toEqual([current.password]);

    // Callers keep being served once the old credential is gone.
    await traffic.answered(2);
    await traffic.stop();
    expect(traffic.answers.filter((a) => a.status !== 200)).toEqual([]);
    // The traffic overlapped the switch: its audit records name both the old and the new version.
    const ids = new Set(traffic.answers.map((a) => a.requestId));
    const versions = new Set((await h.auditRecords()).filter((r) => ids.has(String(r.requestId))).map((r) => r.credentialVersion));
    expect([...versions].sort()).toEqual([old.version, current.version].sort());
  });

  it('leaves a complete trail in the rotations table, with no secret value in it', async () => {
    const rows = await rotationTrail(h, host);
    const trail = rows.filter((r) => String(r.rowKey).startsWith('trail-')).reverse();
    expect(trail.map((r) => `${String(r.from)}→${String(r.to)}`)).toEqual([
      'idle→creating',
      'creating→created',
      'created→verified',
      'verified→stored',
      'stored→idle',
    ]);
    const text = JSON.stringify(rows);
    const allLogs = [...logs, ...h.logs].join('\n');
    for (const version of [...h.sandbox.keyVault.versions('sandbox-registry'), ...h.sandbox.keyVault.versions('sandbox-registry-pending')]) {
      const { password } = JSON.parse(version.value) as { password: string };
      expect(text).not.toContain(password);
      expect(allLogs).not.toContain(password);
    }
    expect(text).not.toContain(h.sandbox.dockerHub!.adminPassword);
    expect(logs.join('\n')).not.toContain(h.sandbox.dockerHub!.adminPassword);
  });

  it('is not due again right after a rotation', async () => {
    const [report] = await h.sandbox.services.rotation.runDue();
    expect(report).toMatchObject({ outcome: 'not-due' });
  });
});

describe('failures keep the old credential and back off', () => {
  it('Docker Hub API 5xx: records the error, issuance unaffected, retried after the backoff', async () => {
    const before = storedCredential(h);
    h.sandbox.dockerHub!.failNext(10, 503);
    const failed = await h.sandbox.services.rotation.rotate(host, { force: true });
    h.sandbox.dockerHub!.failNext(0, 500);
    expect(failed.outcome).toBe('failed');
    expect(failed.detail).toMatch(/503/);
    expect(storedCredential(h).version).toBe(before.version);
    expect((await issue()).status).toBe(200);

    const [waiting] = await h.sandbox.services.rotation.runDue();
    expect(waiting).toMatchObject({ outcome: 'backing-off' });
    clock.advanceMinutes(16);
    const [resumed] = await h.sandbox.services.rotation.runDue();
    expect(resumed).toMatchObject({ outcome: 'in-grace' });
    clock.advanceMinutes(graceMinutes(h) + 1);
    await h.sandbox.services.rotation.runDue();
    expect(h.sandbox.dockerHub!.activeTokens()).toHaveLength(1);
  });

  it('Key Vault refuses the write (403): the new token is taken back at once, the old one stays', async () => {
    const before = storedCredential(h);
    const activeBefore = h.sandbox.dockerHub!.activeTokens().map((t) => t.uuid);
    h.sandbox.keyVault.setWritesDenied(true);
    const failed = await h.sandbox.services.rotation.rotate(host, { force: true });
    h.sandbox.keyVault.setWritesDenied(false);
    expect(failed.outcome).toBe('failed');
    expect(failed.detail).toMatch(/permission|403|Forbidden/i);
    expect(h.sandbox.dockerHub!.activeTokens().map((t) => t.uuid)).toEqual(activeBefore);
    expect(await credentialWorks(h, before.username, before.password)).toBe(true);
    expect((await issue()).status).toBe(200);

    clock.advanceMinutes(16);
    expect((await h.sandbox.services.rotation.runDue())[0]).toMatchObject({ outcome: 'in-grace' });
    clock.advanceMinutes(graceMinutes(h) + 1);
    await h.sandbox.services.rotation.runDue();
    expect(h.sandbox.dockerHub!.activeTokens()).toHaveLength(1);
  });

  it('a new credential that fails verification is revoked and the old one kept', async () => {
    const before = storedCredential(h);
    h.sandbox.tokens.failNext(1, 401);
    const failed = await h.sandbox.services.rotation.rotate(host, { force: true });
    expect(failed.outcome).toBe('failed');
    expect(failed.detail).toMatch(/verification failed/);
    expect(storedCredential(h).version).toBe(before.version);
    expect(h.sandbox.dockerHub!.activeTokens().map((t) => t.token)).toEqual([before.password]);
    expect((await h.sandbox.services.rotation.runDue())[0]).toMatchObject({ outcome: 'backing-off' });
  });

  it('a temporary error of the token service during verification is retried, not taken as a bad credential', async () => {
    clock.advanceMinutes(16);
    h.sandbox.tokens.failNext(10, 503);
    const failed = await h.sandbox.services.rotation.rotate(host, { force: true });
    h.sandbox.tokens.failNext(0, 500);
    expect(failed).toMatchObject({ outcome: 'failed', step: 'created' });
    // The second failure in a row: the backoff has doubled to 30 minutes.
    clock.advanceMinutes(16);
    expect((await h.sandbox.services.rotation.runDue())[0]).toMatchObject({ outcome: 'backing-off' });
    clock.advanceMinutes(15);
    expect((await h.sandbox.services.rotation.runDue())[0]).toMatchObject({ outcome: 'in-grace' });
    clock.advanceMinutes(graceMinutes(h) + 1);
    expect((await h.sandbox.services.rotation.runDue())[0]).toMatchObject({ outcome: 'rotated' });
    expect(h.sandbox.dockerHub!.activeTokens().map((t) => t.token)).toEqual([storedCredential(h).password]);
  });
});

describe('admin endpoints', () => {
  it('GET /admin/credentials reports versions and state, never a secret', async () => {
    const response = await fetch(`${h.sandbox.broker.url}/api/v1/admin/credentials`, { headers: { Authorization: `Bearer ${await h.tokenFor(h.admin)}` } });
    expect(response.status).toBe(200);
    const text = await response.text();
    const body = JSON.parse(text) as { credentials: Record<string, unknown>[] };
    const managed = body.credentials.find((c) => c.registry === host);
    expect(managed).toMatchObject({ kind: 'token-auth', provider: 'dockerhub', credentialSecret: 'sandbox-registry', currentVersion: storedCredential(h).version });
    expect(managed).toMatchObject({ state: 'idle' });
    expect(managed?.lastError).toBeUndefined();
    expect(managed?.nextDueAt).toBeTruthy();
    expect(body.credentials.find((c) => c.registry === 'unmanaged.registry.test')).toMatchObject({ provider: 'none', state: 'idle' });
    expect(text).not.toContain(storedCredential(h).password);
    expect(text).not.toContain(h.sandbox.dockerHub!.adminPassword);
  });

  it('a credential that cannot be rotated by API: its nearing expiry is reported and the timer warns', async () => {
    const [secret] = h.sandbox.keyVault.versions('unmanaged');
    h.sandbox.keyVault.update('unmanaged', secret!.version, { exp: Math.floor(Date.now() / 1000) + 3 * 86_400 });
    const statuses = await h.sandbox.services.rotation.status();
    expect(statuses.find((s) => s.registry === 'unmanaged.registry.test')?.warning).toMatch(/expires .*replace it by hand/);
    logs.length = 0;
    await rotationTimer.run(h.sandbox.services, timerLog);
    expect(logs.some((line) => line.includes('stored credential expires soon') && line.includes('unmanaged.registry.test'))).toBe(true);
  });

  it('POST /admin/credentials/{registry}/rotate rotates now; 409 for a registry without rotation; 403 without the role', async () => {
    const admin = await h.tokenFor(h.admin);
    const rotate = (registry: string, bearer = admin) =>
      fetch(`${h.sandbox.broker.url}/api/v1/admin/credentials/${encodeURIComponent(registry)}/rotate`, { method: 'POST', headers: { Authorization: `Bearer ${bearer}` } });
    clock.advanceMinutes(20);
    const response = await rotate(host);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ outcome: 'in-grace', step: 'stored' });
    const unmanaged = await rotate('unmanaged.registry.test');
    expect(unmanaged.status).toBe(409);
    await problemOf(unmanaged);
    expect((await rotate(host, await h.tokenFor(caller))).status).toBe(403);
    const nowhere = await rotate('nowhere.example');
    expect(nowhere.status).toBe(404);
    // Both refusals are refusals in the admin audit, after the request that was made.
    const { entries } = (await (await fetch(`${h.sandbox.broker.url}/api/v1/admin/audit`, { headers: { Authorization: `Bearer ${admin}` } })).json()) as { entries: Record<string, unknown>[] };
    const trail = (target: string) => entries.filter((entry) => entry.action === 'credential.rotate' && entry.target === target).reverse().map((entry) => [entry.outcome, entry.detail ?? null]);
    expect(trail('unmanaged.registry.test')).toEqual([['requested', null], ['refused', 'not-managed']]);
    expect(trail('nowhere.example')).toEqual([['requested', null], ['refused', 'not-found unknown-registry']]);
  });
});
