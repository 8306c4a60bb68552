import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CompletedStep } from '../../src/credentials/rotation/rotationEngine.js';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { startHarness, type Harness } from './harness.js';

/** The rotation engine's clock, moved forward by the tests instead of waiting hours. */
export function offsetClock() {
  let offset = 0;
  return {
    now: () => Date.now() + offset,
    advanceMinutes: (minutes: number) => {
      offset += minutes * 60_000;
    },
  };
}

/** The grace period the sandbox's catalog gives the rotated registry's old credential, in minutes. */
export function graceMinutes(h: Harness): number {
  const entry = h.sandbox.config.registries.find((e) => e.host === h.sandbox.registry.host);
  const rotation = entry && 'rotation' in entry ? entry.rotation : undefined;
  if (!rotation) throw new Error('the sandbox registry has no rotation policy');
  return rotation.graceMinutes;
}

/** Asks the registry's token server directly whether it accepts this username and password. */
export async function credentialWorks(h: Harness, username: string, password: string): Promise<boolean> {
  const url = `${h.sandbox.tokens.realm}?service=${h.sandbox.tokens.service}`;
  const response = await fetch(url, { headers: { Authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` } });
  await response.body?.cancel();
  return response.status === 200;
}

/** The stored credential as issuance sees it now (latest version). */
export function storedCredential(h: Harness) {
  const versions = h.sandbox.keyVault.versions('sandbox-registry');
  const latest = versions.at(-1)!;
  return { version: latest.version, tags: latest.tags, ...(JSON.parse(latest.value) as { username: string; password: string }) };
}

export async function rotationTrail(h: Harness, registry: string) {
  const { createTableClient } = await import('../../src/tables.js');
  const table = createTableClient(h.sandbox.config.tables, 'rotations', { getToken: async () => null });
  const rows: Record<string, unknown>[] = [];
  for await (const entity of table.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${registry}'` } })) rows.push(entity);
  return rows;
}

/** An engine that stops after `step` until `resume()` is called, like a process frozen mid-run. */
export function stallingEngine(h: Harness, now: () => number, step: CompletedStep, instanceId: string) {
  let reached!: () => void;
  let release!: () => void;
  const stalled = new Promise<void>((resolve) => (reached = resolve));
  const resumed = new Promise<void>((resolve) => (release = resolve));
  const engine = h.sandbox.rotationEngine({
    now,
    instanceId,
    afterStep: async (completed) => {
      if (completed !== step) return;
      reached();
      await resumed;
    },
  });
  return { engine, stalled, resume: release };
}

/** The broker issues with the stored credential, and the real registry accepts what it issued. */
export async function registryAcceptsIssuedToken(h: Harness, caller: ManagedIdentity): Promise<boolean> {
  const response = await h.requestToken(caller, ['repository:acme/rotated:pull']);
  if (response.status !== 200) return false;
  const { token } = (await response.json()) as { token: string };
  const tags = await fetch(`${h.sandbox.registry.url}/v2/acme/rotated/tags/list`, { headers: { Authorization: `Bearer ${token}` } });
  await tags.body?.cancel();
  // An unknown repository asked for with a token the registry accepts: 404, never 401.
  return tags.status === 404;
}

/**
 * Issue 9 M1: instance A creates a credential upstream and stalls past its lease; instance B takes the
 * rotation over and completes it; then A resumes. Whatever A does next, the credential in Key Vault
 * keeps working at the real registry, and only what A made is gone.
 */
export function describeStalledInstance(rotation: 'dockerhub' | 'acr-token', leaseMinutes = 10) {
  describe(`${rotation}: an instance that stalled past its lease resumes after another finished`, () => {
    const clock = offsetClock();
    let h: Harness;
    let caller: ManagedIdentity;

    beforeAll(async () => {
      h = await startHarness({ rotation, rotationOverrides: { now: clock.now }, env: { CREDENTIAL_CACHE_SECONDS: '1' } });
      caller = h.sandbox.identity('workload');
      await h.grant({ id: 'all', subjects: [{ objectId: caller.objectId }], repositories: ['acme/**'], actions: ['pull'] });
    });
    afterAll(() => h?.close());

    /** Every password that works upstream now, by what the provider's stand-in holds. */
    const liveUpstream = (): string[] =>
      rotation === 'dockerhub' ? h.sandbox.dockerHub!.activeTokens().map((t) => t.token) : Object.values(h.sandbox.arm!.slots());

    it('the current credential still works; only the stalled instance’s stray is revoked', async () => {
      const host = h.sandbox.registry.host;
      const old = storedCredential(h);
      const before = liveUpstream();
      const a = stallingEngine(h, clock.now, 'upstream-create', 'stalled-a');
      const runA = a.engine.rotate(host, { force: true });
      await Promise.race([a.stalled, runA.then((report) => Promise.reject(new Error(`A never stalled: ${JSON.stringify(report)}`)))]);
      const strayOfA = liveUpstream().filter((password) => !before.includes(password));
      expect(strayOfA).toHaveLength(1);

      clock.advanceMinutes(leaseMinutes + 1);
      const b = h.sandbox.rotationEngine({ now: clock.now, instanceId: 'successor-b' });
      expect(await b.rotate(host, { force: false })).toMatchObject({ outcome: 'in-grace' });
      const current = storedCredential(h);
      expect(current.version).not.toBe(old.version);

      a.resume();
      expect(await runA).toMatchObject({ outcome: 'busy' });
      expect(await credentialWorks(h, current.username, current.password)).toBe(true);
      expect(await registryAcceptsIssuedToken(h, caller)).toBe(true);
      // Still in B's grace period: the credential being replaced works too; A's stray does not.
      expect(await credentialWorks(h, old.username, old.password)).toBe(true);
      expect(await credentialWorks(h, current.username, strayOfA[0]!)).toBe(false);
      expect(liveUpstream().sort()).toEqual([old.password, current.password].sort());

      // B finishes: the old credential goes, the current one stays.
      clock.advanceMinutes(graceMinutes(h) + 1);
      expect(await b.rotate(host, { force: false })).toMatchObject({ outcome: 'rotated' });
      expect(await credentialWorks(h, old.username, old.password)).toBe(false);
      expect(await credentialWorks(h, current.username, current.password)).toBe(true);
      expect(await registryAcceptsIssuedToken(h, caller)).toBe(true);
    });
  });
}
