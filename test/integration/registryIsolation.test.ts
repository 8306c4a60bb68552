import { randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';

/**
 * What the registry token really allows, read from its `access` claim: exactly what was asked, never
 * the whole grant. And two catalog entries with their own stored credentials stay apart: a grant
 * for one never works at the other, and one's credential is never presented for the other.
 */
const OTHER = 'other.registry.test';
const OTHER_USER = 'other-account';
let h: Harness;
let pusher: ManagedIdentity;
let otherCaller: ManagedIdentity;

beforeAll(async () => {
  h = await startHarness({ extraRegistries: [{ host: OTHER, credentialSecret: 'other-registry' }] });
  // The other entry gets an account of its own before anything has read its secret.
  const password = randomBytes(24).toString('base64url');
  h.sandbox.tokens.addAccount(OTHER_USER, password);
  h.sandbox.keyVault.setSecret('other-registry', JSON.stringify({ username: OTHER_USER, password }), { contentType: 'application/json' });
  pusher = h.sandbox.identity('pusher');
  otherCaller = h.sandbox.identity('other-caller');
  await h.grant({ id: 'push-acme', subjects: [{ objectId: pusher.objectId }], repositories: ['acme/**'], actions: ['pull', 'push'] });
  await h.grant({ id: 'other-pull', registry: OTHER, subjects: [{ objectId: otherCaller.objectId }], repositories: ['acme/**'], actions: ['pull'] });
});
afterAll(() => h?.close());

const issued = async (response: Response) => {
  expect(response.status).toBe(200);
  return decodeJwt(((await response.json()) as { token: string }).token) as { access: unknown; sub: string };
};

describe('the upstream token grants exactly the asked scope', () => {
  it('a push-granted caller asking only for pull gets a pull-only token', async () => {
    const claims = await issued(await h.requestToken(pusher, ['repository:acme/web:pull']));
    expect(claims.access).toEqual([{ type: 'repository', name: 'acme/web', actions: ['pull'] }]);
  });

  it('several scopes: each repository with its own actions, nothing of the pattern beyond them', async () => {
    const claims = await issued(await h.requestToken(pusher, ['repository:acme/web:pull,push', 'repository:acme/base:pull']));
    const access = claims.access as { name: string; actions: string[] }[];
    expect(access.map(({ name, actions }) => `${name}:${[...actions].sort().join(',')}`).sort()).toEqual(['acme/base:pull', 'acme/web:pull,push']);
  });
});

describe('two registries with their own credentials', () => {
  it('a grant for one registry never works at the other', async () => {
    const denied = await h.requestToken(pusher, ['repository:acme/web:pull'], OTHER);
    expect(denied.status).toBe(403);
    expect((await problemOf(denied)).type).toBe('urn:registry-broker:problem:not-granted');
    const deniedHere = await h.requestToken(otherCaller, ['repository:acme/web:pull']);
    expect(deniedHere.status).toBe(403);
  });

  it("each registry's token was minted with that registry's own credential", async () => {
    expect((await issued(await h.requestToken(otherCaller, ['repository:acme/web:pull'], OTHER))).sub).toBe(OTHER_USER);
    expect((await issued(await h.requestToken(pusher, ['repository:acme/web:pull']))).sub).toBe('registry-broker');
    const records = await h.auditRecords();
    const versions = (registry: string) => new Set(records.filter((r) => r.registry === registry && r.outcome === 'issued').map((r) => r.credentialVersion));
    const otherVersion = h.sandbox.keyVault.versions('other-registry').at(-1)!.version;
    expect([...versions(OTHER)]).toEqual([otherVersion]);
    expect(versions(h.sandbox.registry.host).has(otherVersion)).toBe(false);
  });
});
