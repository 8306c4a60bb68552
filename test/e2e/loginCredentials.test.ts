import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';
import { writeOciImage } from '../support/ociImage.js';
import { e2eAvailable, pull, push, skopeo } from '../support/skopeo.js';

/**
 * Form "login" against the real docker-registry with skopeo `--creds`: the client mints its own
 * registry tokens with the login credential. Registry tokens live 2 s here
 * (SANDBOX_REGISTRY_TOKEN_SECONDS), so the last test pushes long after every registry token minted
 * before it is dead at the registry (exp + docker-registry's 60 s leeway). The tests in between run
 * while that time passes.
 */
const TOKEN_SECONDS = 2;
/** docker-registry 2.8 accepts a token until 60 s after its `exp`. */
const REGISTRY_LEEWAY_MS = 60_000;
const ORG = 'acme';

interface LoginAnswer {
  username: string;
  password: string;
  expiresAt: string;
  dockerConfig: { auths: Record<string, { auth: string }> };
}

const copyWithCreds = (image: string, reference: string, creds: string) =>
  skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', creds, `oci:${image}:latest`, `docker://${reference}`]);
const pullWithCreds = (reference: string, creds: string, out: string) =>
  skopeo(['copy', '--src-tls-verify=false', '--src-creds', creds, `docker://${reference}`, `oci:${out}:latest`]);
/** Fails with skopeo's own output, which says why. */
const succeeded = (result: { code: number; output: string }) => {
  if (result.code !== 0) throw new Error(`skopeo failed: ${result.output}`);
};

describe.skipIf(!e2eAvailable())('login credentials with docker-registry and skopeo --creds', () => {
  let h: Harness;
  let image: string;
  let pusher: ManagedIdentity;
  let puller: ManagedIdentity;
  let host: string;
  let long: LoginAnswer;
  let short: LoginAnswer;
  let earlyToken: string;
  let lastRegistryTokenAt = 0;

  const login = async (identity: ManagedIdentity, scopes: string[], registry = host, extra: Record<string, unknown> = {}) =>
    h.post('/v1/tokens', { registry, scopes, form: 'login', ...extra }, await h.tokenFor(identity));
  const loginOk = async (identity: ManagedIdentity, scopes: string[], registry = host, extra: Record<string, unknown> = {}) => {
    const response = await login(identity, scopes, registry, extra);
    if (response.status !== 200) throw new Error(`${response.status} ${await response.text()}`);
    return (await response.json()) as LoginAnswer;
  };
  const creds = (answer: LoginAnswer) => `${answer.username}:${answer.password}`;
  /** Every skopeo run with Basic credentials mints registry tokens: remember when the last one was. */
  const minting = async <T>(run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } finally {
      lastRegistryTokenAt = Date.now();
    }
  };

  beforeAll(async () => {
    h = await startHarness({ login: true, acr: true, loginOrganization: ORG, registryTokenSeconds: TOKEN_SECONDS, extraRegistries: [{ host: 'plain.example', credentialSecret: 'plain' }] });
    host = h.sandbox.registry.host;
    image = await writeOciImage('login');
    pusher = h.sandbox.identity('login-pusher');
    puller = h.sandbox.identity('login-puller');
    await h.grant({ id: 'push', subjects: [{ objectId: pusher.objectId }], repositories: ['acme/web'], actions: ['pull', 'push'] });
    await h.grant({ id: 'pull', subjects: [{ objectId: puller.objectId }], repositories: ['acme/web'], actions: ['pull'] });
    await h.grant({ id: 'plain', registry: 'plain.example', subjects: [{ objectId: pusher.objectId }], repositories: ['acme/web'], actions: ['pull'] });
    await h.grant({ id: 'acr', registry: h.sandbox.acr!.host, subjects: [{ objectId: pusher.objectId }], repositories: ['team/app'], actions: ['pull', 'push'] });
  });
  afterAll(() => h?.close());

  it('pushes and pulls with the credential, the client minting registry tokens itself', async () => {
    long = await loginOk(pusher, ['repository:acme/web:pull,push'], host, { ttlSeconds: 3600 });
    short = await loginOk(pusher, ['repository:acme/web:pull,push'], host, { ttlSeconds: 60 });
    expect(short.password).not.toBe(long.password);
    succeeded(await minting(() => copyWithCreds(image, `${host}/acme/web:v1`, creds(long))));
    // A registry token minted now, with the same credential: dead at the registry before the last test.
    const realm = `${h.sandbox.tokens.realm}?service=${h.sandbox.tokens.service}&scope=repository:acme/web:pull,push`;
    const answer = await minting(() => fetch(realm, { headers: { Authorization: `Basic ${Buffer.from(creds(long)).toString('base64')}` } }));
    earlyToken = ((await answer.json()) as { token: string }).token;
    expect((await push(image, `${host}/acme/web:early`, earlyToken)).code).toBe(0);

    const pullOnly = await loginOk(puller, ['repository:acme/web:pull']);
    const out = `${image}-pulled`;
    expect((await minting(() => pullWithCreds(`${host}/acme/web:v1`, creds(pullOnly), out))).code).toBe(0);
    const refused = await minting(() => copyWithCreds(image, `${host}/acme/web:v2`, creds(pullOnly)));
    expect(refused.code).not.toBe(0);
  });

  it('is refused outside its scope', async () => {
    const outside = await minting(() => copyWithCreds(image, `${host}/acme/other:v1`, creds(long)));
    expect(outside.code).not.toBe(0);
    expect(outside.output).toMatch(/denied|unauthorized/i);
  });

  it('is refused after a block, at once', async () => {
    const doomed = h.sandbox.identity('login-doomed');
    await h.grant({ id: 'doomed', subjects: [{ objectId: doomed.objectId }], repositories: ['acme/web'], actions: ['pull', 'push'] });
    const credential = await loginOk(doomed, ['repository:acme/web:pull,push']);
    expect((await minting(() => copyWithCreds(image, `${host}/acme/web:doomed`, creds(credential)))).code).toBe(0);
    const blocked = await fetch(`${h.sandbox.broker.url}/api/v1/admin/blocks/${doomed.objectId}`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${await h.tokenFor(h.admin)}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ reason: 'leaked build logs' }),
    });
    expect(blocked.status).toBe(200);
    const after = await minting(() => copyWithCreds(image, `${host}/acme/web:doomed2`, creds(credential)));
    expect(after.code).not.toBe(0);
    expect(after.output).toMatch(/unauthorized|authentication required|denied/i);
  });

  it('gives form-unsupported for a registry without a login provider', async () => {
    const response = await login(pusher, ['repository:acme/web:pull'], 'plain.example');
    expect(response.status).toBe(400);
    const problem = await problemOf(response);
    expect(problem.type).toBe('urn:registry-broker:problem:form-unsupported');
    expect(problem.detail).toMatch(/"token"/);
  });

  it('pushes to ACR with a scope-map token and is refused outside its scope there', async () => {
    const acr = h.sandbox.acr!.host;
    const credential = await loginOk(pusher, ['repository:team/app:pull,push'], acr);
    expect((await minting(() => copyWithCreds(image, `${acr}/team/app:v1`, creds(credential)))).code).toBe(0);
    const out = `${image}-acr`;
    expect((await minting(() => pullWithCreds(`${acr}/team/app:v1`, creds(credential), out))).code).toBe(0);
    expect((await minting(() => copyWithCreds(image, `${acr}/team/other:v1`, creds(credential)))).code).not.toBe(0);
  });

  it('still pushes after every registry token minted before has expired; the short one is refused after its expiry', { timeout: 150_000 }, async () => {
    const deadTokensAt = lastRegistryTokenAt + TOKEN_SECONDS * 1000 + REGISTRY_LEEWAY_MS + 1000;
    const shortExpired = Date.parse(short.expiresAt) + 1000;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.max(deadTokensAt, shortExpired) - Date.now())));
    // The registry token minted in the first test is dead at the registry now…
    const stale = await push(image, `${host}/acme/web:stale`, earlyToken);
    expect(stale.code).not.toBe(0);
    expect(stale.output).toMatch(/unauthorized|authentication required/i);
    // …and the login credential it came from still pushes: skopeo mints a fresh one.
    succeeded(await copyWithCreds(image, `${host}/acme/web:late`, creds(long)));
    expect((await pull(`${host}/acme/web:late`, earlyToken)).code).not.toBe(0);
    // The 60 s credential has expired: its next registry token is refused.
    const expired = await copyWithCreds(image, `${host}/acme/web:too-late`, creds(short));
    expect(expired.code).not.toBe(0);
    expect(expired.output).toMatch(/unauthorized|authentication required/i);
  });
});
