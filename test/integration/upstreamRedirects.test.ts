import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { sendJson, startLocalServer, type LocalServer } from '../../src/sandbox/localServer.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';

/**
 * The broker never follows an upstream redirect (it would carry the stored credential, or trust, to
 * wherever the Location points), and never sends the credential to a plain-http realm off loopback,
 * even on a host the operator listed.
 */
let h: Harness;
let caller: ManagedIdentity;
const servers: LocalServer[] = [];
const seen: string[] = [];

/** A registry on 127.0.0.1 answering /v2/ and /token as the test says, recording what it was asked. */
async function registry(name: string, answer: (path: string, response: import('node:http').ServerResponse, self: string) => void): Promise<LocalServer> {
  const server: LocalServer = await startLocalServer((request, response) => {
    seen.push(`${name} ${request.url?.split('?')[0]}`);
    answer(request.url ?? '/', response, server.url);
  });
  servers.push(server);
  return server;
}
const challenge = (realm: string) => ({ 'WWW-Authenticate': `Bearer realm="${realm}",service="sandbox-registry"` });

let tokenRedirect: LocalServer;
let challengeRedirect: LocalServer;
let plainHttpRealm: LocalServer;

beforeAll(async () => {
  // The redirects point at the sandbox token server, which would answer with a valid token.
  let tokensUrl = '';
  tokenRedirect = await registry('token-redirect', (path, response, self) => {
    if (path.startsWith('/v2')) return sendJson(response, 401, {}, challenge(`${self}/token`));
    response.writeHead(302, { Location: `${tokensUrl}${path}` }).end();
  });
  challengeRedirect = await registry('challenge-redirect', (path, response) => {
    response.writeHead(307, { Location: `${tokensUrl}${path}` }).end();
  });
  plainHttpRealm = await registry('plain-http', (_path, response) => sendJson(response, 401, {}, challenge('http://auth.registry.example/token')));
  h = await startHarness({
    extraRegistries: [tokenRedirect, challengeRedirect, plainHttpRealm].map((server) => ({
      host: `127.0.0.1:${server.port}`,
      endpoint: server.url,
      credentialSecret: `registry-${server.port}`,
      realmHosts: ['auth.registry.example'],
    })),
  });
  tokensUrl = h.sandbox.tokens.url;
  caller = h.sandbox.identity('workload');
  for (const server of servers) {
    await h.grant({ id: `pull-${server.port}`, registry: `127.0.0.1:${server.port}`, subjects: [{ objectId: caller.objectId }], repositories: ['acme/web'], actions: ['pull'] });
  }
});
afterAll(async () => {
  await h?.close();
  for (const server of servers) await server.close();
});

async function expectRefused(server: LocalServer) {
  const mints = h.sandbox.tokens.requests();
  const response = await h.requestToken(caller, ['repository:acme/web:pull'], `127.0.0.1:${server.port}`);
  expect(response.status).toBe(502);
  const problem = await problemOf(response);
  expect(problem.type).toMatch(/^urn:registry-broker:problem:(upstream-error|realm-not-allowed)$/);
  expect(JSON.stringify(problem)).not.toMatch(/eyJ/);
  // The redirect target never heard from the broker.
  expect(h.sandbox.tokens.requests()).toBe(mints);
  return problem;
}

it('a token endpoint answering with a redirect: 502, and the redirect is not followed', async () => {
  await expectRefused(tokenRedirect);
  expect(seen.filter((entry) => entry.startsWith('token-redirect'))).toEqual(['token-redirect /v2/', 'token-redirect /token']);
});

it('a /v2/ challenge answered with a redirect: 502, and neither the redirect nor any realm is followed', async () => {
  await expectRefused(challengeRedirect);
  expect(seen.filter((entry) => entry.startsWith('challenge-redirect'))).toEqual(['challenge-redirect /v2/']);
});

it('a plain-http realm off loopback, even on a listed host: 502 naming the realm rule', async () => {
  const problem = await expectRefused(plainHttpRealm);
  expect(String(problem.detail)).toMatch(/realm/);
  expect(String(problem.detail)).not.toMatch(/could not be reached|did not answer/);
});
