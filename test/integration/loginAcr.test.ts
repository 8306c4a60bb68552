import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acrTokenName, scopeMapActions, scopeMapName } from '../../src/credentials/login/acrScopeMap.js';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { dockerRegistryAvailable } from '../../src/sandbox/dockerRegistry.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';

/**
 * Form "login" with ACR scope-map tokens through the ARM stand-in (the broker's own managed identity,
 * api-version 2023-07-01): exact scope maps shared by identical scope sets, a token per credential,
 * passwords that expire, deletion, and ARM failures.
 */
describe.skipIf(!dockerRegistryAvailable())('login credentials from ACR scope-map tokens', () => {
  let h: Harness;
  let caller: ManagedIdentity;
  let other: ManagedIdentity;
  const acr = () => h.sandbox.acr!.host;
  const passwords: string[] = [];

  const login = async (identity: ManagedIdentity, scopes: string[], extra: Record<string, unknown> = {}) =>
    h.post('/v1/tokens', { registry: acr(), scopes, form: 'login', ...extra }, await h.tokenFor(identity));
  const loginOk = async (identity: ManagedIdentity, scopes: string[], extra: Record<string, unknown> = {}) => {
    const response = await login(identity, scopes, extra);
    if (response.status !== 200) throw new Error(`${response.status} ${await response.text()}\n${h.logs.slice(-3).join('\n')}`);
    const body = (await response.json()) as { username: string; password: string; credentialId: string; expiresAt: string; expiresIn: number; issuanceId: string };
    passwords.push(body.password);
    return body;
  };
  /** What ACR's token endpoint (GET /oauth2/token with Basic, as docker login uses it) grants these credentials. */
  const acrAccess = async (username: string, password: string, scope: string) => {
    const url = `${h.sandbox.acr!.url}/oauth2/token?service=${encodeURIComponent(acr())}&scope=${encodeURIComponent(scope)}`;
    const response = await fetch(url, { headers: { Authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` } });
    if (response.status !== 200) return { status: response.status, access: undefined };
    return { status: 200, access: decodeJwt(((await response.json()) as { access_token: string }).access_token).access };
  };

  beforeAll(async () => {
    h = await startHarness({ acr: true, login: true, registryTimeoutSeconds: 2 });
    caller = h.sandbox.identity('acr-builder');
    other = h.sandbox.identity('acr-other');
    await h.grant({ id: 'acr-build', registry: acr(), subjects: [{ objectId: caller.objectId }, { objectId: other.objectId }], repositories: ['team/**'], actions: ['pull', 'push', 'delete'] });
  });
  afterAll(() => h?.close());

  it('creates a scope map for exactly the scope set, a token bound to it, and an expiring password', async () => {
    const body = await loginOk(caller, ['repository:team/app:pull,push', 'repository:team/base:pull'], { ttlSeconds: 1200 });
    expect(body.username).toBe(acrTokenName(body.issuanceId));
    expect(body.credentialId).toBe(body.username);
    expect(body.expiresIn).toBeGreaterThan(1190);
    const actions = ['repositories/team/app/content/read', 'repositories/team/app/content/write', 'repositories/team/base/content/read'];
    expect(scopeMapActions([{ repository: 'team/base', actions: ['pull'] }, { repository: 'team/app', actions: ['pull', 'push'] }])).toEqual(actions);
    const map = h.sandbox.arm!.scopeMaps().find((candidate) => candidate.name === scopeMapName(actions))!;
    expect(map.actions.slice().sort()).toEqual(actions);
    const token = h.sandbox.arm!.tokens().find((candidate) => candidate.name === body.username)!;
    expect(token).toMatchObject({ scopeMapName: map.name, status: 'enabled' });

    expect(await acrAccess(body.username, body.password, 'repository:team/app:pull,push,delete')).toEqual({
      status: 200,
      access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }],
    });
    expect(await acrAccess(body.username, body.password, 'repository:team/other:pull')).toEqual({ status: 200, access: [] });
    // Good at the ACR login server only, not at another registry's token service.
    const elsewhere = await fetch(`${h.sandbox.tokens.realm}?service=${h.sandbox.tokens.service}`, {
      headers: { Authorization: `Basic ${Buffer.from(`${body.username}:${body.password}`).toString('base64')}` },
    });
    expect(elsewhere.status).toBe(401);
  });

  it('reuses an identical scope map for another identity, with a token of its own', async () => {
    const creates = h.sandbox.arm!.scopeMapCreates();
    const mine = await loginOk(caller, ['repository:team/shared:pull']);
    const theirs = await loginOk(other, ['repository:team/shared:pull']);
    expect(theirs.username).not.toBe(mine.username);
    expect(h.sandbox.arm!.scopeMapCreates()).toBe(creates + 1);
    const again = await loginOk(caller, ['repository:team/shared:pull']);
    expect(again.credentialId).toBe(mine.credentialId);
  });

  it('deletes the token when it expires, and its password stops working', async () => {
    const body = await loginOk(caller, ['repository:team/expiring:pull'], { ttlSeconds: 60 });
    expect((await acrAccess(body.username, body.password, 'repository:team/expiring:pull')).status).toBe(200);
    expect((await h.sandbox.services.logins.cleanup(Date.now() + 61_000)).deleted).toBeGreaterThanOrEqual(1);
    expect(h.sandbox.arm!.tokens().some((token) => token.name === body.username)).toBe(false);
    expect((await acrAccess(body.username, body.password, 'repository:team/expiring:pull')).status).toBe(401);
  });

  it('ARM failures: 5xx is 503 with Retry-After, a refusal 502, a hang 504', async () => {
    // GETs are retried: every attempt of the first call fails.
    h.sandbox.arm!.failNext(3, 503);
    const down = await login(caller, ['repository:team/fail1:pull']);
    expect(down.status).toBe(503);
    expect(down.headers.get('retry-after')).toBeTruthy();
    expect((await problemOf(down)).type).toBe('urn:registry-broker:problem:login-provider-unavailable');

    h.sandbox.arm!.failNext(1, 403);
    const refused = await login(caller, ['repository:team/fail2:pull']);
    expect(refused.status).toBe(502);
    expect((await problemOf(refused)).type).toBe('urn:registry-broker:problem:login-provider-refused');

    h.sandbox.arm!.setDelay(5000);
    const started = Date.now();
    const slow = await login(caller, ['repository:team/fail3:pull']);
    h.sandbox.arm!.setDelay(0);
    expect(slow.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(2000 + 1500);
  });

  it('never logs or records a password', async () => {
    const audit = JSON.stringify(await h.auditRecords());
    const logs = h.logs.join('\n');
    for (const password of passwords) {
      expect(logs).not.toContain(password);
      expect(audit).not.toContain(password);
    }
  });
});
