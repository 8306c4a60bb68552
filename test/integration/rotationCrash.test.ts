import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CompletedStep } from '../../src/credentials/rotation/rotationEngine.js';
import { startHarness, type Harness } from '../support/harness.js';
import { credentialWorks, graceMinutes, offsetClock, rotationTrail, storedCredential } from '../support/rotation.js';

/**
 * The engine is stopped right after each step in turn, and a fresh engine (another instance, after
 * the first one's lease ran out) takes over. Every run must end with exactly one active upstream
 * credential, the one in Key Vault, working; nothing orphaned; and a complete trail.
 */
const clock = offsetClock();
let h: Harness;
let host: string;
const LEASE_MINUTES = 10;

beforeAll(async () => {
  h = await startHarness({ rotation: 'dockerhub', rotationOverrides: { now: clock.now } });
  host = h.sandbox.registry.host;
});
afterAll(() => h?.close());

async function expectOneWorkingCredential() {
  const stored = storedCredential(h);
  const active = h.sandbox.dockerHub!.activeTokens();
  expect(active.map((t) => t.token)).toEqual([stored.password]);
  expect(active[0]!.uuid).toBe(stored.tags.credentialRef);
  expect(await credentialWorks(h, stored.username, stored.password)).toBe(true);
}

async function expectCompleteTrail(rotationId: string) {
  const trail = (await rotationTrail(h, host)).filter((r) => r.rotationId === rotationId && String(r.rowKey).startsWith('trail-')).reverse();
  expect(trail.map((r) => `${String(r.from)}→${String(r.to)}`)).toEqual(['idle→creating', 'creating→created', 'created→verified', 'verified→stored', 'stored→idle']);
}

describe.each<CompletedStep>(['upstream-create', 'create', 'verify', 'store', 'revoke'])('stopped after %s', (step) => {
  it('resumes on another instance and ends with one working credential', async () => {
    const crashed = h.sandbox.rotationEngine({
      now: clock.now,
      instanceId: `crashing-${step}`,
      afterStep: async (completed) => {
        if (completed === step) throw new Error(`process died after ${step}`);
      },
    });
    const first = crashed.rotate(host, { force: true });
    if (step === 'revoke') {
      expect(await first).toMatchObject({ outcome: 'in-grace' });
      clock.advanceMinutes(graceMinutes(h) + 1);
      await expect(crashed.rotate(host, { force: false })).rejects.toThrow(/process died after revoke/);
    } else {
      await expect(first).rejects.toThrow(new RegExp(`process died after ${step}`));
    }

    const successor = h.sandbox.rotationEngine({ now: clock.now, instanceId: `successor-${step}` });
    // While the crashed instance's lease lasts, nobody else touches the rotation.
    if (step === 'upstream-create' || step === 'create' || step === 'verify') {
      expect(await successor.rotate(host, { force: false })).toMatchObject({ outcome: 'busy' });
    }
    clock.advanceMinutes(LEASE_MINUTES + 1);
    const resumed = await successor.rotate(host, { force: false });
    // Stopped after revoke, the rotation was already complete: nothing is left to do.
    expect(step === 'revoke' ? ['not-due'] : ['in-grace', 'rotated']).toContain(resumed.outcome);
    clock.advanceMinutes(graceMinutes(h) + 1);
    const finished = await successor.rotate(host, { force: false });
    expect(['rotated', 'not-due']).toContain(finished.outcome);

    await expectOneWorkingCredential();
    await expectCompleteTrail(resumed.rotationId);
    clock.advanceMinutes(1);
  });
});

describe('a create whose answer is lost', () => {
  it('is not sent again; the next attempt revokes the token it made and leaves no orphan', async () => {
    h.sandbox.dockerHub!.dropNextCreateAnswer();
    const created = h.sandbox.dockerHub!.createdCount();
    const failed = await h.sandbox.services.rotation.rotate(host, { force: true });
    expect(failed.outcome).toBe('failed');
    expect(h.sandbox.dockerHub!.createdCount() - created).toBe(1);
    expect(h.sandbox.dockerHub!.activeTokens()).toHaveLength(2);
    clock.advanceMinutes(16);
    expect((await h.sandbox.services.rotation.runDue())[0]).toMatchObject({ outcome: 'in-grace' });
    clock.advanceMinutes(graceMinutes(h) + 1);
    await h.sandbox.services.rotation.runDue();
    await expectOneWorkingCredential();
  });
});

describe('concurrent runs', () => {
  it('the timer and an admin call in one process at once: one rotation', async () => {
    const engine = h.sandbox.services.rotation;
    const created = h.sandbox.dockerHub!.createdCount();
    const reports = await Promise.all([engine.rotate(host, { force: true }), engine.rotate(host, { force: true })]);
    expect(reports.map((r) => r.outcome).sort()).toEqual(['busy', 'in-grace']);
    expect(h.sandbox.dockerHub!.createdCount() - created).toBe(1);
    clock.advanceMinutes(graceMinutes(h) + 1);
    await engine.runDue();
    await expectOneWorkingCredential();
  });

  it('two instances resuming the same interrupted rotation: one finishes it, nothing is left behind', async () => {
    const crashed = h.sandbox.rotationEngine({
      now: clock.now,
      instanceId: 'crashed',
      afterStep: async (completed) => {
        if (completed === 'create') throw new Error('died');
      },
    });
    await expect(crashed.rotate(host, { force: true })).rejects.toThrow('died');
    clock.advanceMinutes(LEASE_MINUTES + 1);
    const a = h.sandbox.rotationEngine({ now: clock.now, instanceId: 'resume-a' });
    const b = h.sandbox.rotationEngine({ now: clock.now, instanceId: 'resume-b' });
    const created = h.sandbox.dockerHub!.createdCount();
    const reports = await Promise.all([a.rotate(host, { force: false }), b.rotate(host, { force: false })]);
    expect(reports.map((r) => r.outcome).sort()).toEqual(['busy', 'in-grace']);
    expect(h.sandbox.dockerHub!.createdCount() - created).toBe(0);
    clock.advanceMinutes(graceMinutes(h) + 1);
    await a.runDue();
    await expectOneWorkingCredential();
  });
});

describe('two engines at once', () => {
  it('exactly one rotation happens', async () => {
    const a = h.sandbox.rotationEngine({ now: clock.now, instanceId: 'a' });
    const b = h.sandbox.rotationEngine({ now: clock.now, instanceId: 'b' });
    const created = h.sandbox.dockerHub!.createdCount();
    const before = h.sandbox.keyVault.versions('sandbox-registry').length;
    const reports = await Promise.all([a.rotate(host, { force: true }), b.rotate(host, { force: true })]);
    expect(reports.map((r) => r.outcome).sort()).toEqual(['busy', 'in-grace']);
    expect(h.sandbox.dockerHub!.createdCount() - created).toBe(1);
    expect(h.sandbox.keyVault.versions('sandbox-registry').length - before).toBe(1);
    clock.advanceMinutes(graceMinutes(h) + 1);
    await Promise.all([a.runDue(), b.runDue()]);
    await expectOneWorkingCredential();
  });
});
