import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';

/** Issue 15 "Explain": per requested action, the grant that allows it or each grant's first reason not to apply. */
let h: Harness;
let workload: ManagedIdentity;
let other: ManagedIdentity;
let admin: string;

beforeAll(async () => {
  h = await startHarness();
  workload = h.sandbox.identity('workload');
  other = h.sandbox.identity('other');
  admin = await h.tokenFor(h.admin);
  const mine = [{ objectId: workload.objectId }];
  await h.grant({ id: 'a-subject', subjects: [{ objectId: other.objectId }], repositories: ['acme/web'], actions: ['pull', 'push'] });
  await h.grant({ id: 'b-repository', subjects: mine, repositories: ['other/*'], actions: ['pull', 'push'] });
  await h.grant({ id: 'c-action', subjects: mine, repositories: ['acme/**'], actions: ['pull'], maxTtlSeconds: 900 });
  await h.grant({ id: 'd-disabled', subjects: mine, repositories: ['acme/web'], actions: ['pull', 'push'], enabled: false });
  await h.grant({ id: 'e-expired', subjects: mine, repositories: ['acme/web'], actions: ['pull', 'push'], notAfter: '2026-01-01T00:00:00Z' });
  await h.grant({ id: 'f-long', subjects: [{ appId: workload.clientId }], repositories: ['acme/web'], actions: ['pull'] });
});
afterAll(() => h?.close());

const ask = (body: unknown, bearer = admin) =>
  fetch(`${h.sandbox.broker.url}/api/v1/admin/explain`, { method: 'POST', headers: { Authorization: `Bearer ${bearer}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

interface Answer {
  allowed: boolean;
  blocked: boolean;
  actions: { repository: string; action: string; allowed: boolean; grantId?: string; lifetimeCapSeconds?: number; grants?: { id: string; reason: string }[] }[];
  lifetimeCapSeconds?: number;
  block?: { reason: string };
  replayed?: { requestId: string; outcome: string; reason: string };
}

describe('POST /api/v1/admin/explain', () => {
  it('names the allowing grant per action, and for a denied one the first reason each grant does not apply', async () => {
    const response = await ask({ subject: { objectId: workload.objectId, appId: workload.clientId }, registry: h.sandbox.registry.host, scopes: ['repository:acme/web:pull,push'] });
    expect(response.status).toBe(200);
    const answer = (await response.json()) as Answer;
    expect(answer.allowed).toBe(false);
    const [pull, push] = answer.actions;
    // Both c-action (900 s) and f-long (by appId, no cap) allow pull: the longer cap wins, as in issuance.
    expect(pull).toMatchObject({ repository: 'acme/web', action: 'pull', allowed: true, grantId: 'f-long' });
    expect(push).toMatchObject({ action: 'push', allowed: false });
    expect(push!.grants).toEqual([
      { id: 'a-subject', reason: 'subject' },
      { id: 'b-repository', reason: 'repository' },
      { id: 'c-action', reason: 'action' },
      { id: 'd-disabled', reason: 'disabled' },
      { id: 'e-expired', reason: 'expired' },
      { id: 'f-long', reason: 'action' },
    ]);
  });

  it('gives the lifetime cap that would apply when everything is allowed', async () => {
    const response = await ask({ subject: { objectId: workload.objectId }, registry: h.sandbox.registry.host, scopes: ['repository:acme/api:pull'] });
    const answer = (await response.json()) as Answer;
    expect(answer).toMatchObject({ allowed: true, blocked: false, lifetimeCapSeconds: 900 });
    expect(answer.actions).toEqual([{ repository: 'acme/api', action: 'pull', allowed: true, grantId: 'c-action', lifetimeCapSeconds: 900 }]);
  });

  it('replays an audited request by its requestId (from the 403 the caller got), and records the question in the admin audit', async () => {
    const denied = await h.requestToken(workload, ['repository:acme/web:push']);
    expect(denied.status).toBe(403);
    const { requestId } = await problemOf(denied);
    const answer = (await (await ask({ requestId })).json()) as Answer;
    expect(answer.replayed).toMatchObject({ requestId, outcome: 'denied', reason: 'not-granted' });
    expect(answer.actions).toMatchObject([{ repository: 'acme/web', action: 'push', allowed: false }]);
    const audit = await fetch(`${h.sandbox.broker.url}/api/v1/admin/audit`, { headers: { Authorization: `Bearer ${admin}` } });
    const { entries } = (await audit.json()) as { entries: { action: string; objectId: string }[] };
    expect(entries.filter((entry) => entry.action === 'explain').length).toBeGreaterThanOrEqual(3);
    expect((await ask({ requestId: 'no-such-request' })).status).toBe(404);
  });

  it('a block wins, and is shown', async () => {
    const put = await fetch(`${h.sandbox.broker.url}/api/v1/admin/blocks/${workload.objectId}`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ reason: 'incident 42' }),
    });
    expect(put.status).toBe(200);
    const answer = (await (await ask({ subject: { objectId: workload.objectId }, registry: h.sandbox.registry.host, scopes: ['repository:acme/api:pull'] })).json()) as Answer;
    expect(answer).toMatchObject({ allowed: false, blocked: true, block: { reason: 'incident 42' } });
    expect(answer.actions[0]).toMatchObject({ allowed: false, grantId: 'c-action' });
  });

  it('is for admins only, and validates its question', async () => {
    expect((await ask({ subject: { objectId: workload.objectId }, registry: h.sandbox.registry.host, scopes: ['repository:acme/web:pull'] }, await h.tokenFor(workload))).status).toBe(403);
    expect((await ask({ subject: {}, registry: h.sandbox.registry.host, scopes: ['repository:acme/web:pull'] })).status).toBe(400);
    expect((await ask({ subject: { objectId: workload.objectId }, registry: 'unknown.example', scopes: ['repository:acme/web:pull'] })).status).toBe(404);
  });

  it('names the field that is wrong, in the terms of the shape it was asked in', async () => {
    const detail = async (body: unknown) => (await problemOf(await ask(body))).detail;
    expect(await detail({ subject: { objectId: workload.objectId }, registry: h.sandbox.registry.host, scopes: ['repository:../x:pull'] })).toMatch(/^scopes\.0: /);
    expect(await detail({ subject: { objectId: workload.objectId }, registry: h.sandbox.registry.host, scopes: Array.from({ length: 21 }, (_, i) => `repository:a/r${i}:pull`) })).toMatch(/^scopes: /);
    expect(await detail({ requestId: '', from: 'yesterday' })).toMatch(/^requestId: .*; from: /);
    // Query parameters are named as such, a parameter the search does not know included.
    const search = await fetch(`${h.sandbox.broker.url}/api/v1/admin/issuances?unknown=1`, { headers: { Authorization: `Bearer ${admin}` } });
    expect(search.status).toBe(400);
    expect((await problemOf(search)).detail).toMatch(/^\(query\): .*unknown/);
  });
});
