import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { AUDIENCE, problemOf, startHarness, type Harness } from '../support/harness.js';

/** Grants are managed over the admin API, with the admin app role, and ETag/If-Match on every write. */
let h: Harness;
let adminBearer: string;
let workload: ManagedIdentity;
let base: string;

beforeAll(async () => {
  h = await startHarness();
  adminBearer = await h.tokenFor(h.admin);
  workload = h.sandbox.identity('workload');
  base = `${h.sandbox.broker.url}/api/v1/admin/grants`;
});
afterAll(() => h?.close());

const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}, bearer = adminBearer) =>
  fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${bearer}`, 'Content-Type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

const grantFor = (id: string, actions = ['pull']) => ({
  id,
  description: 'test grant',
  subjects: [{ objectId: workload.objectId }],
  registry: h.sandbox.registry.host,
  repositories: ['acme/web'],
  actions,
});

describe('admin role', () => {
  it('a valid token without the admin role gets 403 on every grant route', async () => {
    const bearer = await h.tokenFor(workload);
    for (const [method, path] of [['GET', ''], ['POST', ''], ['GET', '/x'], ['PUT', '/x'], ['DELETE', '/x']] as const) {
      const response = await call(method, path, method === 'POST' || method === 'PUT' ? grantFor('x') : undefined, { 'If-Match': '*' }, bearer);
      expect(response.status).toBe(403);
      expect((await problemOf(response)).type).toBe('urn:registry-broker:problem:not-admin');
    }
  });

  it('an operator\'s user token (scp) with the admin role is accepted; without the role it is 403', async () => {
    const operator = h.sandbox.identity('operator', ['Broker.Admin']);
    const userClaims = { scp: 'user_impersonation', idtyp: 'user', name: 'Ops Person' };
    const withRole = await h.sandbox.entra.mint({ identity: operator, audience: AUDIENCE, claims: userClaims });
    expect((await call('GET', '', undefined, {}, withRole)).status).toBe(200);
    const plainUser = h.sandbox.identity('user');
    const withoutRole = await h.sandbox.entra.mint({ identity: plainUser, audience: AUDIENCE, claims: userClaims });
    const refused = await call('GET', '', undefined, {}, withoutRole);
    expect(refused.status).toBe(403);
    expect((await problemOf(refused)).type).toBe('urn:registry-broker:problem:not-admin');
  });

  it('a user token is still refused at the token endpoint', async () => {
    const operator = h.sandbox.identity('operator2', ['Broker.Admin']);
    const token = await h.sandbox.entra.mint({ identity: operator, audience: AUDIENCE, claims: { scp: 'user_impersonation' } });
    const response = await h.post('/v1/tokens', { registry: h.sandbox.registry.host, scopes: ['repository:a:pull'] }, token);
    expect(response.status).toBe(401);
  });

  it('no token is 401', async () => {
    const response = await fetch(base);
    expect(response.status).toBe(401);
  });
});

describe('grant lifecycle', () => {
  it('create, read, update with If-Match, delete; the grant takes effect at once on this instance', async () => {
    const before = await h.requestToken(workload, ['repository:acme/web:pull']);
    expect(before.status).toBe(403);

    const created = await call('POST', '', grantFor('web'));
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe('/api/v1/admin/grants/web');
    const etag = created.headers.get('etag')!;
    expect(etag).toBeTruthy();
    expect(await created.json()).toMatchObject({ id: 'web', actions: ['pull'], enabled: true });

    expect((await h.requestToken(workload, ['repository:acme/web:pull'])).status).toBe(200);

    const read = await call('GET', '/web');
    expect(read.status).toBe(200);
    expect(read.headers.get('etag')).toBe(etag);

    const listed = (await (await call('GET', '')).json()) as { grants: { id: string }[] };
    expect(listed.grants.map((g) => g.id)).toContain('web');

    const updated = await call('PUT', '/web', { ...grantFor('web', ['pull', 'push']), id: undefined }, { 'If-Match': etag });
    expect(updated.status).toBe(200);
    const newEtag = updated.headers.get('etag')!;
    expect(newEtag).not.toBe(etag);
    expect((await h.requestToken(workload, ['repository:acme/web:pull,push'])).status).toBe(200);

    const deleted = await call('DELETE', '/web', undefined, { 'If-Match': newEtag });
    expect(deleted.status).toBe(204);
    expect((await h.requestToken(workload, ['repository:acme/web:pull'])).status).toBe(403);
    expect((await call('GET', '/web')).status).toBe(404);
  });

  it('a stale ETag is 412 and changes nothing', async () => {
    const created = await call('POST', '', grantFor('stale'));
    const etag = created.headers.get('etag')!;
    const first = await call('PUT', '/stale', grantFor('stale', ['pull', 'push']), { 'If-Match': etag });
    expect(first.status).toBe(200);
    const second = await call('PUT', '/stale', grantFor('stale', ['pull', 'push', 'delete']), { 'If-Match': etag });
    expect(second.status).toBe(412);
    await problemOf(second);
    const removed = await call('DELETE', '/stale', undefined, { 'If-Match': etag });
    expect(removed.status).toBe(412);
    expect(await (await call('GET', '/stale')).json()).toMatchObject({ actions: ['pull', 'push'] });
  });

  it('an If-Match that is no ETag of this API is 412 too (not a store outage), audited, and changes nothing', async () => {
    const created = await call('POST', '', grantFor('odd-tag'));
    const etag = created.headers.get('etag')!;
    for (const tag of ['"bogus"', 'W/"bogus"', etag.replace(/^W\//, '')]) {
      const replaced = await call('PUT', '/odd-tag', grantFor('odd-tag', ['pull', 'push']), { 'If-Match': tag });
      const removed = await call('DELETE', '/odd-tag', undefined, { 'If-Match': tag });
      expect([tag, replaced.status, (await problemOf(replaced)).type, removed.status]).toEqual([tag, 412, 'urn:registry-broker:problem:precondition-failed', 412]);
      await removed.body?.cancel();
    }
    expect(await (await call('GET', '/odd-tag')).json()).toMatchObject({ actions: ['pull'] });
    expect(h.logs.filter((line) => line.includes('grant store request failed'))).toEqual([]);
    const { entries } = (await (await fetch(`${h.sandbox.broker.url}/api/v1/admin/audit`, { headers: { Authorization: `Bearer ${adminBearer}` } })).json()) as { entries: Record<string, unknown>[] };
    const refusals = entries.filter((entry) => entry.target === 'odd-tag' && entry.outcome === 'refused');
    expect(refusals.map((entry) => entry.detail)).toEqual(Array(6).fill('stale precondition-failed'));
  });

  it('writes without If-Match are 428', async () => {
    await call('POST', '', grantFor('guarded'));
    expect((await call('PUT', '/guarded', grantFor('guarded'))).status).toBe(428);
    expect((await call('DELETE', '/guarded')).status).toBe(428);
  });

  it('a duplicate id is 409', async () => {
    await call('POST', '', grantFor('dup'));
    const again = await call('POST', '', grantFor('dup'));
    expect(again.status).toBe(409);
  });

  it('an id in the body that differs from the path is 400', async () => {
    const created = await call('POST', '', grantFor('mine'));
    const response = await call('PUT', '/mine', grantFor('theirs'), { 'If-Match': created.headers.get('etag')! });
    expect(response.status).toBe(400);
  });

  it.each([
    ['a regex metacharacter in a pattern', { repositories: ['acme/web', 'acme/(web|api)'] }, 'repositories.1', /./],
    ['an unknown action', { actions: ['pull', 'own'] }, 'actions.1', /./],
    ['no subjects', { subjects: [] }, 'subjects', /./],
    ['a subject that is not a GUID', { subjects: [{ objectId: 'someone' }] }, 'subjects.0.objectId', /./],
    ['an unknown field', { owner: 'me' }, '(body)', /owner/],
    ['a bad id', { id: '../etc' }, 'id', /./],
    ['a TTL below a minute', { maxTtlSeconds: 5 }, 'maxTtlSeconds', /./],
    ['a bad notAfter', { notAfter: 'next tuesday' }, 'notAfter', /./],
  ])('invalid grant: %s is 400 naming the field', async (_name, change, path, message) => {
    const response = await call('POST', '', { ...grantFor('bad'), ...change });
    expect(response.status).toBe(400);
    const problem = await problemOf(response);
    // Exactly the offending field, and nothing that was valid.
    expect(problem.errors).toEqual([{ path, message: expect.stringMatching(message) }]);
    expect((await call('GET', '/bad')).status).toBe(404);
  });

  it('two truly concurrent PUTs with the same ETag: exactly one wins, and the grant is the winner\'s', async () => {
    const created = await call('POST', '', grantFor('raced'));
    const etag = created.headers.get('etag')!;
    const variants = [['pull'], ['pull', 'push'], ['pull', 'delete'], ['pull', 'push', 'delete']];
    const answers = await Promise.all(variants.map((actions) => call('PUT', '/raced', grantFor('raced', actions), { 'If-Match': etag })));
    const statuses = answers.map((answer) => answer.status);
    expect(statuses.filter((status) => status === 200)).toHaveLength(1);
    expect(statuses.filter((status) => status === 412)).toHaveLength(variants.length - 1);
    const winner = variants[statuses.indexOf(200)]!;
    const stored = await call('GET', '/raced');
    expect(await stored.json()).toMatchObject({ actions: winner });
    expect(stored.headers.get('etag')).toBe(answers[statuses.indexOf(200)]!.headers.get('etag'));
  });

  it('an unknown id is 404', async () => {
    expect((await call('GET', '/nope')).status).toBe(404);
    expect((await call('GET', '/NOT..VALID')).status).toBe(404);
  });
});
