import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { sendJson, startLocalServer, type LocalServer } from '../../src/sandbox/localServer.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';

/**
 * Issue 9 M5: when the stored account lacks a right, a token server answers with a token that grants
 * less than asked instead of an error. The broker reads the token's `access` claim and refuses it
 * (502 upstream-narrowed, audited, naming what was withheld); an opaque token is issued and says so.
 */
let h: Harness;
let caller: ManagedIdentity;
let opaqueRealm: LocalServer;

beforeAll(async () => {
  opaqueRealm = await startLocalServer((_request, response) => sendJson(response, 200, { token: 'opaque-not-a-jwt', expires_in: 300 }));
  h = await startHarness({
    extraRegistries: [{ host: 'opaque.registry.test', credentialSecret: 'opaque-registry', realm: `${opaqueRealm.url}/token`, service: 'opaque' }],
  });
  caller = h.sandbox.identity('ci');
  await h.grant({ id: 'push-web', subjects: [{ objectId: caller.objectId }], repositories: ['acme/web'], actions: ['pull', 'push'] });
  await h.grant({ id: 'opaque-pull', registry: 'opaque.registry.test', subjects: [{ objectId: caller.objectId }], repositories: ['acme/web'], actions: ['pull'] });
  // The stored account may only pull at the registry, whatever the grants say.
  h.sandbox.tokens.addAccount('registry-broker', h.sandbox.registryPassword, (_repository, action) => action === 'pull');
});
afterAll(async () => {
  await h?.close();
  await opaqueRealm?.close();
});

const recordOf = async (response: Response) => {
  const requestId = response.headers.get('x-request-id');
  return (await h.auditRecords()).find((row) => row.requestId === requestId);
};

describe('what the upstream token really grants', () => {
  it('a token narrowed by the registry is refused: 502 upstream-narrowed naming what was withheld, audited as failed', async () => {
    const response = await h.requestToken(caller, ['repository:acme/web:pull,push']);
    expect(response.status).toBe(502);
    const problem = await problemOf(response);
    expect(problem).toMatchObject({ type: 'urn:registry-broker:problem:upstream-narrowed' });
    expect(problem.detail).toContain('repository:acme/web:push');
    expect(problem).not.toHaveProperty('token');
    expect(await recordOf(response)).toMatchObject({ outcome: 'failed', reason: 'upstream-narrowed', status: 502 });
  });

  it('a token that covers the scope is issued and its record says it was verified', async () => {
    const response = await h.requestToken(caller, ['repository:acme/web:pull']);
    expect(response.status).toBe(200);
    expect(await recordOf(response)).toMatchObject({ outcome: 'issued', upstreamScope: 'verified' });
  });

  it('an opaque upstream token is issued, and its record says the broker could not check it', async () => {
    const response = await h.requestToken(caller, ['repository:acme/web:pull'], 'opaque.registry.test');
    expect(response.status).toBe(200);
    expect(await recordOf(response)).toMatchObject({ outcome: 'issued', upstreamScope: 'opaque' });
  });
});
