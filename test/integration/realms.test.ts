import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLineLogger } from '../../src/logger.js';
import { RegistryCatalog } from '../../src/registries/catalog.js';
import { UpstreamTokenMinter } from '../../src/registries/upstreamTokens.js';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { sendJson, startLocalServer, type LocalServer } from '../../src/sandbox/localServer.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';

/**
 * Issue 9 H1: the stored credential goes only to a realm the operator approved. A registry (here a
 * fake one on 127.0.0.1) that names a realm on another host (`localhost`) gets nothing: the realm
 * server never sees an Authorization header, and the caller gets 502 realm-not-allowed.
 */
let h: Harness;
let caller: ManagedIdentity;
let recorder: LocalServer;
const seenAtRecorder: (string | undefined)[] = [];
const fakes: { server: LocalServer; challenge: () => string }[] = [];
let relay: LocalServer;

/** A registry that only answers /v2/ with a challenge of the test's choosing. */
async function fakeRegistry(challenge: () => string): Promise<LocalServer> {
  const server = await startLocalServer((request, response) => {
    if (request.url?.startsWith('/v2')) return sendJson(response, 401, { errors: [{ code: 'UNAUTHORIZED' }] }, { 'WWW-Authenticate': challenge() });
    sendJson(response, 404, {});
  });
  fakes.push({ server, challenge });
  return server;
}

const tokensPort = () => new URL(h.sandbox.tokens.url).port;
const recorderRealm = () => `Bearer realm="http://localhost:${recorder.port}/token",service="sandbox-registry"`;

let evil: LocalServer;
let listed: LocalServer;
let pinned: LocalServer;

beforeAll(async () => {
  recorder = await startLocalServer((request, response) => {
    seenAtRecorder.push(request.headers.authorization);
    sendJson(response, 200, { token: 'stolen' });
  });
  // A relay on 127.0.0.1 in front of the sandbox token server, so the pinned realm is known up front.
  relay = await startLocalServer(async (request, response) => {
    const answer = await fetch(`${h.sandbox.tokens.url}${request.url}`, { headers: { authorization: request.headers.authorization ?? '' } });
    sendJson(response, answer.status, await answer.json());
  });
  evil = await fakeRegistry(recorderRealm);
  listed = await fakeRegistry(() => `Bearer realm="http://localhost:${tokensPort()}/token",service="sandbox-registry"`);
  pinned = await fakeRegistry(recorderRealm);
  h = await startHarness({
    extraRegistries: [
      { host: `127.0.0.1:${evil.port}`, endpoint: evil.url, credentialSecret: 'evil-registry' },
      { host: `127.0.0.1:${listed.port}`, endpoint: listed.url, credentialSecret: 'listed-registry', realmHosts: ['localhost'] },
      { host: `127.0.0.1:${pinned.port}`, endpoint: pinned.url, credentialSecret: 'pinned-registry', realm: `${relay.url}/token`, service: 'sandbox-registry' },
    ],
  });
  caller = h.sandbox.identity('workload');
  for (const server of [evil, listed, pinned]) {
    await h.grant({ id: `pull-${server.port}`, registry: `127.0.0.1:${server.port}`, subjects: [{ objectId: caller.objectId }], repositories: ['acme/web'], actions: ['pull'] });
  }
});
afterAll(async () => {
  await h?.close();
  for (const part of [recorder, relay, ...fakes.map((fake) => fake.server)]) await part?.close();
});

describe('token realms', () => {
  it('a realm on another host than the registry is refused: 502 realm-not-allowed, and the realm sees no credential', async () => {
    const response = await h.requestToken(caller, ['repository:acme/web:pull'], `127.0.0.1:${evil.port}`);
    expect(response.status).toBe(502);
    expect(await problemOf(response)).toMatchObject({ type: 'urn:registry-broker:problem:realm-not-allowed' });
    expect(seenAtRecorder).toEqual([]);
    const line = h.logs.find((entry) => entry.includes('token realm not allowed'));
    expect(line).toContain(`localhost:${recorder.port}`);
    expect(line).not.toContain(h.sandbox.registryPassword);
    const record = (await h.auditRecords()).find((row) => row.registry === `127.0.0.1:${evil.port}`);
    expect(record).toMatchObject({ outcome: 'failed', reason: 'realm-not-allowed', status: 502 });
  });

  it('a realm host listed in realmHosts is used', async () => {
    const response = await h.requestToken(caller, ['repository:acme/web:pull'], `127.0.0.1:${listed.port}`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { token: string }).token.split('.')).toHaveLength(3);
  });

  it('a pinned realm is used whatever the registry names, and the named realm sees nothing', async () => {
    const response = await h.requestToken(caller, ['repository:acme/web:pull'], `127.0.0.1:${pinned.port}`);
    expect(response.status).toBe(200);
    expect(seenAtRecorder).toEqual([]);
  });

  it('a registry whose realm changes after it was first approved is refused, and the new realm sees nothing', async () => {
    let realm = `Bearer realm="${h.sandbox.tokens.url}/token",service="sandbox-registry"`;
    const moving = await fakeRegistry(() => realm);
    const [entry] = new RegistryCatalog([
      { kind: 'token-auth', host: `127.0.0.1:${moving.port}`, endpoint: moving.url, credentialSecret: 'unused', timeoutSeconds: 5 },
    ]).entries();
    const logs: string[] = [];
    const minter = new UpstreamTokenMinter(jsonLineLogger((line) => logs.push(line)), { challengeTtlMs: 1 });
    const credential = { username: 'registry-broker', password: h.sandbox.registryPassword, version: 'v1' };
    const first = await minter.mint(entry!, credential, [{ repository: 'acme/web', actions: ['pull'] }]);
    expect(first.token.split('.')).toHaveLength(3);

    // Same host (127.0.0.1), so only the change itself is wrong.
    const other = await startLocalServer((request, response) => {
      seenAtRecorder.push(request.headers.authorization);
      sendJson(response, 200, { token: 'stolen' });
    });
    fakes.push({ server: other, challenge: () => '' });
    realm = `Bearer realm="${other.url}/token",service="sandbox-registry"`;
    await new Promise((resolve) => setTimeout(resolve, 5));
    await expect(minter.mint(entry!, credential, [{ repository: 'acme/web', actions: ['pull'] }])).rejects.toMatchObject({ code: 'realm-not-allowed' });
    expect(seenAtRecorder).toEqual([]);
    expect(logs.some((line) => line.includes('the realm changed'))).toBe(true);
  });
});
