import { ManagedIdentityCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoginCredentialStore } from '../../src/credentials/login/loginStore.js';
import { loginProviders } from '../../src/credentials/login/providers.js';
import { loginCleanupTimer } from '../../src/functions/loginCleanupTimer.js';
import { LoginIssuer } from '../../src/issuance/loginIssuer.js';
import { jsonLineLogger } from '../../src/logger.js';
import { RegistryCatalog } from '../../src/registries/catalog.js';
import { createTableClient } from '../../src/tables.js';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';

/**
 * Form "login" with Docker Hub organization access tokens (Docker Hub API stand-in), through
 * POST /v1/tokens: the answer, exact resources, reuse and single-flight, cleanup, revocation on
 * block, provider failures, and that no password reaches a log line, a problem or a table row.
 */
const ORG = 'acme';
let h: Harness;
let caller: ManagedIdentity;
let host: string;
const passwords = new Set<string>();

interface LoginAnswer {
  registry: string;
  form: string;
  username: string;
  password: string;
  expiresAt: string;
  expiresIn: number;
  credentialId: string;
  scopes: string[];
  issuanceId: string;
  dockerConfig: { auths: Record<string, { auth: string }> };
}

async function login(identity: ManagedIdentity, scopes: string[], extra: Record<string, unknown> = {}): Promise<Response> {
  return h.post('/v1/tokens', { registry: host, scopes, form: 'login', ...extra }, await h.tokenFor(identity));
}

async function loginOk(identity: ManagedIdentity, scopes: string[], extra: Record<string, unknown> = {}): Promise<LoginAnswer> {
  const response = await login(identity, scopes, extra);
  if (response.status !== 200) throw new Error(`${response.status} ${await response.text()}\n${h.logs.slice(-3).join('\n')}`);
  const body = (await response.json()) as LoginAnswer;
  passwords.add(body.password);
  return body;
}

/** What the sandbox's token server grants these Basic credentials for `scope` (the registry's view). */
async function registryAccess(username: string, password: string, scope: string): Promise<{ status: number; access: unknown }> {
  const url = `${h.sandbox.tokens.realm}?service=${h.sandbox.tokens.service}&scope=${encodeURIComponent(scope)}`;
  const response = await fetch(url, { headers: { Authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` } });
  if (response.status !== 200) return { status: response.status, access: undefined };
  const { token } = (await response.json()) as { token: string };
  return { status: 200, access: decodeJwt(token).access };
}

beforeAll(async () => {
  h = await startHarness({ login: true, loginOrganization: ORG, registryTimeoutSeconds: 2, extraRegistries: [{ host: 'plain.example', credentialSecret: 'plain' }] });
  host = h.sandbox.registry.host;
  caller = h.sandbox.identity('builder');
  await h.grant({ id: 'acme-build', subjects: [{ objectId: caller.objectId }], repositories: ['acme/**', 'other/web'], actions: ['pull', 'push', 'delete'] });
  await h.grant({ id: 'plain', registry: 'plain.example', subjects: [{ objectId: caller.objectId }], repositories: ['acme/**'], actions: ['pull'] });
});
afterAll(() => h?.close());

describe('the login answer', () => {
  it('is an organization access token for exactly the scopes, expiring when the provider says', async () => {
    const before = Date.now();
    const body = await loginOk(caller, ['repository:acme/web:pull,push'], { ttlSeconds: 1800 });
    expect(body).toMatchObject({ registry: host, form: 'login', username: ORG, scopes: ['repository:acme/web:pull,push'] });
    expect(body.expiresIn).toBeGreaterThan(1790);
    expect(body.expiresIn).toBeLessThanOrEqual(1800);
    expect(Buffer.from(body.dockerConfig.auths[host]!.auth, 'base64').toString()).toBe(`${ORG}:${body.password}`);

    const oat = h.sandbox.dockerHub!.orgTokens().find((token) => token.id === body.credentialId)!;
    expect(oat.label).toBe(`registry-broker ${body.issuanceId}`);
    expect(oat.resources).toEqual([{ type: 'TYPE_REPO', path: 'acme/web', scopes: ['scope-image-pull', 'scope-image-push'] }]);
    // The answer gives whole seconds of what the provider reported.
    expect(Math.abs(Date.parse(oat.expiresAt!) - Date.parse(body.expiresAt))).toBeLessThan(1000);
    expect(Date.parse(body.expiresAt) - before).toBeLessThanOrEqual(1800 * 1000 + 1000);

    expect(await registryAccess(ORG, body.password, 'repository:acme/web:pull,push,delete')).toEqual({ status: 200, access: [{ type: 'repository', name: 'acme/web', actions: ['pull', 'push'] }] });
    expect(await registryAccess(ORG, body.password, 'repository:acme/other:pull')).toEqual({ status: 200, access: [] });
  });

  it('defaults to LOGIN_TTL_SECONDS, capped by MAX_TTL_SECONDS and the grant', async () => {
    const body = await loginOk(caller, ['repository:acme/default:pull']);
    expect(body.expiresIn).toBeGreaterThan(3590);
    expect(body.expiresIn).toBeLessThanOrEqual(3600);
    const capped = h.sandbox.identity('capped');
    await h.grant({ id: 'capped', subjects: [{ objectId: capped.objectId }], repositories: ['acme/web'], actions: ['pull'], maxTtlSeconds: 600 });
    const short = await loginOk(capped, ['repository:acme/web:pull'], { ttlSeconds: 3600 });
    expect(short.expiresIn).toBeLessThanOrEqual(600);
    expect(short.expiresIn).toBeGreaterThan(590);
    const ending = h.sandbox.identity('ending');
    await h.grant({ id: 'ending', subjects: [{ objectId: ending.objectId }], repositories: ['acme/web'], actions: ['pull'], notAfter: new Date(Date.now() + 300_000).toISOString() });
    const untilEnd = await loginOk(ending, ['repository:acme/web:pull'], { ttlSeconds: 3600 });
    expect(untilEnd.expiresIn).toBeLessThanOrEqual(300);
    expect(untilEnd.expiresIn).toBeGreaterThan(280);
  });

  it('is refused for a registry without a login provider, naming the forms it supports', async () => {
    const response = await h.post('/v1/tokens', { registry: 'plain.example', scopes: ['repository:acme/web:pull'], form: 'login' }, await h.tokenFor(caller));
    expect(response.status).toBe(400);
    const problem = await problemOf(response);
    expect(problem.type).toBe('urn:registry-broker:problem:form-unsupported');
    expect(problem.detail).toMatch(/"token"/);
  });

  it('refuses what an organization access token cannot grant exactly, creating nothing', async () => {
    const created = h.sandbox.dockerHub!.orgTokenCreates();
    for (const scopes of [['repository:acme/web:push'], ['repository:acme/web:pull,delete'], ['repository:other/web:pull']]) {
      const response = await login(caller, scopes);
      expect(response.status).toBe(400);
      expect((await problemOf(response)).type).toBe('urn:registry-broker:problem:login-scope-unsupported');
    }
    expect(h.sandbox.dockerHub!.orgTokenCreates()).toBe(created);
  });

  it('keeps ttlSeconds to form login', async () => {
    const response = await h.post('/v1/tokens', { registry: host, scopes: ['repository:acme/web:pull'], ttlSeconds: 600 }, await h.tokenFor(caller));
    expect(response.status).toBe(400);
  });
});

describe('reuse', () => {
  it('hands the same credential out again, one provider call, one audit record per request', async () => {
    const created = h.sandbox.dockerHub!.orgTokenCreates();
    const first = await loginOk(caller, ['repository:acme/reuse:pull']);
    const second = await loginOk(caller, ['repository:acme/reuse:pull']);
    expect(second.credentialId).toBe(first.credentialId);
    expect(second.password).toBe(first.password);
    expect(second.issuanceId).not.toBe(first.issuanceId);
    expect(h.sandbox.dockerHub!.orgTokenCreates()).toBe(created + 1);
    const mine = (await records()).filter((record) => record.credentialId === first.credentialId);
    expect(mine.map((record) => [record.issuanceId, record.form, record.tokenReused]).sort()).toEqual(
      [
        [first.issuanceId, 'login', false],
        [second.issuanceId, 'login', true],
      ].sort(),
    );
  });

  it('makes a new one when the held one would outlive a shorter ttlSeconds', async () => {
    const long = await loginOk(caller, ['repository:acme/short:pull'], { ttlSeconds: 3600 });
    const short = await loginOk(caller, ['repository:acme/short:pull'], { ttlSeconds: 600 });
    expect(short.credentialId).not.toBe(long.credentialId);
    expect(short.expiresIn).toBeLessThanOrEqual(600);
  });

  it('makes a new one when the held one has less than half of a longer ttlSeconds left', async () => {
    const short = await loginOk(caller, ['repository:acme/longer:pull'], { ttlSeconds: 600 });
    const long = await loginOk(caller, ['repository:acme/longer:pull'], { ttlSeconds: 3600 });
    expect(long.credentialId).not.toBe(short.credentialId);
    expect(long.expiresIn).toBeGreaterThan(3500);
    // The longer one is now the one held: a request like it gets it again, and so does the shorter
    // kind while the held one has no more left than that asks for (it has more here: a new one).
    const again = await loginOk(caller, ['repository:acme/longer:pull'], { ttlSeconds: 3600 });
    expect(again.credentialId).toBe(long.credentialId);
    const shorterAgain = await loginOk(caller, ['repository:acme/longer:pull'], { ttlSeconds: 600 });
    expect(shorterAgain.credentialId).not.toBe(long.credentialId);
  });

  it('shares one create among 50 concurrent identical requests', async () => {
    const created = h.sandbox.dockerHub!.orgTokenCreates();
    const bearer = await h.tokenFor(caller);
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => h.post('/v1/tokens', { registry: host, scopes: ['repository:acme/burst:pull,push'], form: 'login' }, bearer)),
    );
    expect(answers.map((answer) => answer.status)).toEqual(Array(50).fill(200));
    const bodies = (await Promise.all(answers.map((answer) => answer.json()))) as LoginAnswer[];
    bodies.forEach((body) => passwords.add(body.password));
    expect(new Set(bodies.map((body) => body.credentialId)).size).toBe(1);
    expect(new Set(bodies.map((body) => body.issuanceId)).size).toBe(50);
    expect(h.sandbox.dockerHub!.orgTokenCreates()).toBe(created + 1);
    const mine = (await records()).filter((record) => record.credentialId === bodies[0]!.credentialId);
    expect(mine).toHaveLength(50);
  });

  it('reuses while more than half the lifetime remains, then makes a new one', async () => {
    // The issuer itself, on a clock the test moves, over the sandbox's stores and Docker Hub.
    let offset = 0;
    const identity = new ManagedIdentityCredential();
    const secrets = new SecretClient(h.sandbox.config.keyVaultUrl, identity, { disableChallengeResourceVerification: true, allowInsecureConnection: true });
    const log = jsonLineLogger((line) => h.logs.push(line));
    const logins = new LoginIssuer({
      issuer: h.sandbox.services.issuer,
      providers: loginProviders(new RegistryCatalog(h.sandbox.config.registries).entries(), secrets, identity),
      store: new LoginCredentialStore(loginTable(), log),
      blocks: h.sandbox.services.blocks,
      log,
      defaultTtlSeconds: 600,
      now: () => Date.now() + offset,
    });
    const who = { tenantId: h.sandbox.config.tenantId, objectId: caller.objectId, appId: caller.clientId, roles: [], tokenVersion: '1.0' as const };
    const request = { registry: host, scopes: [{ repository: 'acme/half', actions: ['pull' as const] }] };
    const ask = (id: string) => logins.issue(who, request, id, new Date());
    const first = await ask('01JHALFLIFE0000000000000001');
    passwords.add(first.password);
    offset = 290_000;
    const early = await ask('01JHALFLIFE0000000000000002');
    expect(early).toMatchObject({ credentialId: first.credentialId, reused: true });
    offset = 310_000;
    const late = await ask('01JHALFLIFE0000000000000003');
    passwords.add(late.password);
    expect(late.reused).toBe(false);
    expect(late.credentialId).not.toBe(first.credentialId);
  });

  it('is per identity: another identity with the same scopes gets its own', async () => {
    const other = h.sandbox.identity('other-builder');
    await h.grant({ id: 'other-builder', subjects: [{ objectId: other.objectId }], repositories: ['acme/reuse'], actions: ['pull'] });
    const mine = await loginOk(caller, ['repository:acme/reuse:pull']);
    const theirs = await loginOk(other, ['repository:acme/reuse:pull']);
    expect(theirs.credentialId).not.toBe(mine.credentialId);
  });
});

describe('cleanup and revocation', () => {
  it('deletes expired credentials at the provider and records it', async () => {
    const body = await loginOk(caller, ['repository:acme/expiring:pull'], { ttlSeconds: 60 });
    expect((await h.sandbox.services.logins.cleanup()).deleted).toBe(0);
    expect(h.sandbox.dockerHub!.orgTokens().some((token) => token.id === body.credentialId)).toBe(true);
    const report = await h.sandbox.services.logins.cleanup(Date.now() + 61_000);
    expect(report.deleted).toBeGreaterThanOrEqual(1);
    expect(h.sandbox.dockerHub!.orgTokens().some((token) => token.id === body.credentialId)).toBe(false);
    expect((await registryAccess(ORG, body.password, 'repository:acme/expiring:pull')).status).toBe(401);
    const row = await loginRow(body.issuanceId);
    expect(row).toMatchObject({ state: 'deleted', deleteReason: 'expired', credentialId: body.credentialId });
  });

  it('lists live login credentials for admins, never a password', async () => {
    const body = await loginOk(caller, ['repository:acme/listed:pull']);
    const response = await fetch(`${h.sandbox.broker.url}/api/v1/admin/login-credentials`, { headers: { Authorization: `Bearer ${await h.tokenFor(h.admin)}` } });
    expect(response.status).toBe(200);
    const text = await response.text();
    const { credentials } = JSON.parse(text) as { credentials: Record<string, unknown>[] };
    expect(credentials.find((credential) => credential.credentialId === body.credentialId)).toMatchObject({
      issuanceId: body.issuanceId,
      state: 'live',
      objectId: caller.objectId,
      scopes: ['repository:acme/listed:pull'],
      username: ORG,
    });
    for (const password of passwords) expect(text).not.toContain(password);
    const refused = await fetch(`${h.sandbox.broker.url}/api/v1/admin/login-credentials`, { headers: { Authorization: `Bearer ${await h.tokenFor(caller)}` } });
    expect(refused.status).toBe(403);
  });

  it('revokes a blocked identity\'s live login credentials at the provider at once', async () => {
    const blocked = h.sandbox.identity('to-block');
    await h.grant({ id: 'to-block', subjects: [{ objectId: blocked.objectId }], repositories: ['acme/web'], actions: ['pull', 'push'] });
    const a = await loginOk(blocked, ['repository:acme/web:pull']);
    const b = await loginOk(blocked, ['repository:acme/web:pull,push']);
    const response = await fetch(`${h.sandbox.broker.url}/api/v1/admin/blocks/${blocked.objectId}`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${await h.tokenFor(h.admin)}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ reason: 'compromised' }),
    });
    expect(response.status).toBe(200);
    const live = h.sandbox.dockerHub!.orgTokens().map((token) => token.id);
    expect(live).not.toContain(a.credentialId);
    expect(live).not.toContain(b.credentialId);
    expect((await registryAccess(ORG, a.password, 'repository:acme/web:pull')).status).toBe(401);
    expect(await loginRow(b.issuanceId)).toMatchObject({ state: 'deleted', deleteReason: 'blocked' });
    expect((await login(blocked, ['repository:acme/web:pull'])).status).toBe(403);
  });

  it('the cleanup timer deletes what an instance made before it saw a block', async () => {
    const late = h.sandbox.identity('blocked-elsewhere');
    await h.grant({ id: 'blocked-elsewhere', subjects: [{ objectId: late.objectId }], repositories: ['acme/web'], actions: ['pull'] });
    const credential = await loginOk(late, ['repository:acme/web:pull']);
    // The block as another instance stores it: straight into the block list, no revocation here.
    await h.sandbox.services.blocks.put({ objectId: late.objectId, reason: 'elsewhere', blockedAt: new Date().toISOString(), blockedBy: h.admin.objectId });
    expect(h.sandbox.dockerHub!.orgTokens().some((token) => token.id === credential.credentialId)).toBe(true);
    await loginCleanupTimer.run(h.sandbox.services, jsonLineLogger((line) => h.logs.push(line)));
    expect(h.sandbox.dockerHub!.orgTokens().some((token) => token.id === credential.credentialId)).toBe(false);
    expect(await loginRow(credential.issuanceId)).toMatchObject({ state: 'deleted', deleteReason: 'blocked' });
  });
});

describe('provider failures', () => {
  const fresh = (() => {
    let n = 0;
    return () => [`repository:acme/fail${++n}:pull`];
  })();

  it('Hub 429 beyond the deadline: 503 with the Hub\'s Retry-After', async () => {
    h.sandbox.dockerHub!.failNext(1, 429, 30);
    const response = await login(caller, fresh());
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('30');
    expect((await problemOf(response)).type).toBe('urn:registry-broker:problem:login-provider-rate-limited');
  });

  it('Hub 429 with a Retry-After that fits: waited out, then created', async () => {
    h.sandbox.dockerHub!.failNext(1, 429, 1);
    const started = Date.now();
    const response = await login(caller, fresh());
    expect(response.status).toBe(200);
    passwords.add(((await response.json()) as LoginAnswer).password);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  });

  it('Hub 5xx: 503 with Retry-After; Hub refusing: 502', async () => {
    h.sandbox.dockerHub!.failNext(1, 500);
    const down = await login(caller, fresh());
    expect(down.status).toBe(503);
    expect(down.headers.get('retry-after')).toBeTruthy();
    expect((await problemOf(down)).type).toBe('urn:registry-broker:problem:login-provider-unavailable');
    h.sandbox.dockerHub!.failNext(1, 403);
    const refused = await login(caller, fresh());
    expect(refused.status).toBe(502);
    expect((await problemOf(refused)).type).toBe('urn:registry-broker:problem:login-provider-refused');
  });

  it('signs in to the Hub again when its session has ended', async () => {
    h.sandbox.dockerHub!.expireSessions();
    const response = await login(caller, fresh());
    expect(response.status).toBe(200);
    passwords.add(((await response.json()) as LoginAnswer).password);
  });

  it('Hub hanging: 504 within the entry\'s timeout, and the half-made create is cleaned up later', async () => {
    h.sandbox.dockerHub!.setHang(true);
    const started = Date.now();
    const response = await login(caller, fresh());
    h.sandbox.dockerHub!.setHang(false);
    expect(response.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(2000 + 1500);
    expect((await problemOf(response)).type).toBe('urn:registry-broker:problem:login-provider-timeout');
    const timedOut = (await records()).find((record) => record.reason === 'login-provider-timeout')!;
    expect(await loginRow(String(timedOut.issuanceId))).toMatchObject({ state: 'creating', lastError: 'login-provider-timeout' });
    await h.sandbox.services.logins.cleanup(Date.now() + 11 * 60_000);
    expect(await loginRow(String(timedOut.issuanceId))).toMatchObject({ state: 'deleted', deleteReason: 'abandoned' });
  });

  it('every failure is audited as failed with its reason', async () => {
    const reasons = (await records()).filter((record) => record.outcome === 'failed' && record.form === 'login').map((record) => String(record.reason).split(':')[0]);
    expect(reasons).toEqual(expect.arrayContaining(['login-provider-rate-limited', 'login-provider-unavailable', 'login-provider-refused', 'login-provider-timeout']));
  });
});

describe('secrecy', () => {
  it('no password in any log line, audit row or login credential row; their fingerprints are recorded', async () => {
    expect(passwords.size).toBeGreaterThan(5);
    const audit = JSON.stringify(await records());
    const rows = JSON.stringify(await allLoginRows());
    const logs = h.logs.join('\n');
    for (const password of passwords) {
      expect(logs).not.toContain(password);
      expect(audit).not.toContain(password);
      expect(rows).not.toContain(password);
    }
    const { tokenFingerprint } = await import('../../src/audit/issuanceRecord.js');
    const some = [...passwords][0]!;
    expect(audit).toContain(tokenFingerprint(some));
    expect(rows).toContain(tokenFingerprint(some));
  });
});

/** Audit records, without their index copies (row keys `<index>|<row key>`). */
async function records() {
  return (await h.auditRecords()).filter((record) => !String(record.rowKey).includes('|'));
}

function loginTable() {
  return createTableClient(h.sandbox.config.tables, 'logincredentials', { getToken: async () => null });
}

async function allLoginRows(): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  for await (const entity of loginTable().listEntities<Record<string, unknown>>()) rows.push(entity);
  return rows;
}

async function loginRow(issuanceId: string): Promise<Record<string, unknown>> {
  return loginTable().getEntity<Record<string, unknown>>('login', issuanceId);
}
