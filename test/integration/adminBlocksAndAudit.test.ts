import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routes } from '../../src/routes.js';
import type { BrokerHost } from '../../src/sandbox/brokerHost.js';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { advanceClock, installShiftableClock } from '../support/clock.js';
import { AUDIENCE, problemOf, startHarness, type Harness } from '../support/harness.js';

// The other instance's 15 s refresh is crossed by moving the clock, not by waiting for it.
installShiftableClock();

/** Cutting off a compromised identity, and the record of every admin action. */
let h: Harness;
let workload: ManagedIdentity;
let operator: ManagedIdentity;
let operatorToken: string;
let secondInstance: BrokerHost;

beforeAll(async () => {
  h = await startHarness();
  workload = h.sandbox.identity('workload');
  operator = h.sandbox.identity('operator', ['Broker.Admin']);
  // An operator signs in as a user (az login): a delegated token that carries the admin role.
  operatorToken = await h.sandbox.entra.mint({ identity: operator, audience: AUDIENCE, claims: { scp: 'user_impersonation', idtyp: 'user' } });
  await h.grant({ id: 'web', subjects: [{ objectId: workload.objectId }], repositories: ['acme/web'], actions: ['pull'] });
  // A second broker instance on the same stores, with its own caches.
  secondInstance = await h.startInstance();
});
afterAll(() => h?.close());

const adminCall = (method: string, path: string, body?: unknown, bearer = operatorToken) =>
  fetch(`${h.sandbox.broker.url}/api/v1/admin${path}`, {
    method,
    headers: { Authorization: `Bearer ${bearer}`, 'Content-Type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

const tokenOn = async (base: string) =>
  fetch(`${base}/api/v1/tokens`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${await h.tokenFor(workload)}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ registry: h.sandbox.registry.host, scopes: ['repository:acme/web:pull'] }),
  });

describe('blocks', () => {
  it('a blocked identity with a valid grant gets 403 naming the block, on every instance; unblocking restores access', async () => {
    expect((await tokenOn(h.sandbox.broker.url)).status).toBe(200);
    expect((await tokenOn(secondInstance.url)).status).toBe(200); // warms the second instance's block cache

    const blocked = await adminCall('PUT', `/blocks/${workload.objectId}`, { reason: 'credentials leaked in build log #4711' });
    expect(blocked.status).toBe(200);

    const denied = await tokenOn(h.sandbox.broker.url);
    expect(denied.status).toBe(403);
    const problem = await problemOf(denied);
    expect(problem.type).toBe('urn:registry-broker:problem:caller-blocked');
    expect(problem.detail).toContain(`${workload.objectId} is blocked by an operator`);
    // The reason is for operators; the blocked workload is not told what was noticed.
    expect(problem.detail).not.toContain('credentials leaked');
    const record = (await h.auditRecords()).find((r) => r.requestId === problem.requestId);
    expect(record).toMatchObject({ outcome: 'denied', reason: 'caller-blocked', objectId: workload.objectId });

    // The docs promise every other instance within 15 s while Table Storage is up.
    advanceClock(15_000);
    const elsewhere = await tokenOn(secondInstance.url);
    expect(elsewhere.status).toBe(403);
    expect((await problemOf(elsewhere)).type).toBe('urn:registry-broker:problem:caller-blocked');

    expect((await adminCall('DELETE', `/blocks/${workload.objectId}`)).status).toBe(204);
    expect((await tokenOn(h.sandbox.broker.url)).status).toBe(200);
    advanceClock(15_000);
    expect((await tokenOn(secondInstance.url)).status).toBe(200);
  });

  it('the admin audit holds a block and its removal with the operator\'s identity, before and after', async () => {
    // An identity of its own: this test does not lean on what the one before did.
    const suspect = h.sandbox.identity('suspect');
    expect((await adminCall('PUT', `/blocks/${suspect.objectId}`, { reason: 'token in a public gist' })).status).toBe(200);
    expect((await adminCall('DELETE', `/blocks/${suspect.objectId}`)).status).toBe(204);
    const response = await adminCall('GET', '/audit');
    expect(response.status).toBe(200);
    const { entries } = (await response.json()) as { entries: Record<string, unknown>[] };
    const blockEntries = entries.filter((e) => String(e.action).startsWith('block.') && e.target === suspect.objectId);
    expect(blockEntries.map((e) => `${String(e.action)}:${String(e.outcome)}`)).toEqual(['block.delete:requested', 'block.put:requested']);
    for (const entry of blockEntries) expect(entry).toMatchObject({ objectId: operator.objectId, tenantId: h.sandbox.entra.tenantId, appId: operator.clientId });
    expect(blockEntries[1]!.after).toMatchObject({ reason: 'token in a public gist', blockedBy: operator.objectId });
    expect(blockEntries[0]!.before).toMatchObject({ reason: 'token in a public gist' });
  });

  it('grant changes are in the admin audit too, and a refused change is recorded as refused', async () => {
    const created = await adminCall('POST', '/grants', { id: 'audited', subjects: [{ objectId: workload.objectId }], registry: h.sandbox.registry.host, repositories: ['x/y'], actions: ['pull'] });
    const etag = created.headers.get('etag')!;
    // The refusal's detail is its problem code, with the kind only where the code does not say it.
    const taken = await adminCall('POST', '/grants', { id: 'audited', subjects: [{ objectId: workload.objectId }], registry: h.sandbox.registry.host, repositories: ['x/y'], actions: ['pull'] });
    expect(taken.status).toBe(409);
    expect((await adminCall('PUT', '/grants/audited', { subjects: [{ objectId: workload.objectId }], registry: h.sandbox.registry.host, repositories: ['x/y'], actions: ['pull', 'push'] }, operatorToken).then((r) => r.status))).toBe(428);
    const stale = await fetch(`${h.sandbox.broker.url}/api/v1/admin/grants/audited`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${operatorToken}`, 'Content-Type': 'application/json', 'If-Match': 'W/"datetime\'2000-01-01T00%3A00%3A00Z\'"' },
      body: JSON.stringify({ subjects: [{ objectId: workload.objectId }], registry: h.sandbox.registry.host, repositories: ['x/y'], actions: ['pull', 'push'] }),
    });
    expect(stale.status).toBe(412);
    expect((await fetch(`${h.sandbox.broker.url}/api/v1/admin/grants/audited`, { method: 'DELETE', headers: { Authorization: `Bearer ${operatorToken}`, 'If-Match': etag } })).status).toBe(204);

    const { entries } = (await (await adminCall('GET', '/audit')).json()) as { entries: Record<string, unknown>[] };
    const trail = entries.filter((e) => e.target === 'audited').reverse().map((e) => `${String(e.action)}:${String(e.outcome)}`);
    expect(trail).toEqual(['grant.create:requested', 'grant.create:requested', 'grant.create:refused', 'grant.update:requested', 'grant.update:refused', 'grant.delete:requested']);
    const refusals = entries.filter((e) => e.target === 'audited' && e.outcome === 'refused').reverse();
    expect(refusals.map((e) => [e.action, e.detail])).toEqual([
      ['grant.create', 'conflict'],
      ['grant.update', 'stale precondition-failed'],
    ]);
    const update = entries.find((e) => e.target === 'audited' && e.action === 'grant.update' && e.outcome === 'requested')!;
    expect(update.before).toMatchObject({ actions: ['pull'] });
    expect(update.after).toMatchObject({ actions: ['pull', 'push'] });
  });
});

describe('admin authorization on every admin route', () => {
  const adminOperations = routes.flatMap((route) =>
    Object.entries(route.operations)
      .filter(([, operation]) => operation.access === 'admin')
      .map(([method]) => ({ method, path: `/api/${route.route.replace('{id}', 'x').replace('{objectId}', '11111111-1111-1111-1111-111111111111').replace('{registry}', 'docker.io')}` })),
  );

  it('covers the admin routes', () => {
    expect(adminOperations.length).toBeGreaterThanOrEqual(10);
  });

  it.each([
    ['a valid workload token without the role', async () => h.tokenFor(workload)],
    ['a user token with scp but without the role', async () => h.sandbox.entra.mint({ identity: h.sandbox.identity('someone'), audience: AUDIENCE, claims: { scp: 'user_impersonation', idtyp: 'user' } })],
  ])('%s gets 403 everywhere', async (_name, bearer) => {
    const token = await bearer();
    for (const { method, path } of adminOperations) {
      const response = await fetch(`${h.sandbox.broker.url}${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'If-Match': '*' },
        ...(method === 'PUT' || method === 'POST' ? { body: '{}' } : {}),
      });
      expect(response.status, `${method} ${path}`).toBe(403);
    }
  });
});
