import { generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallerTokenValidator } from '../../src/auth/callerToken.js';
import { OpenIdMetadata } from '../../src/auth/openIdMetadata.js';
import { BrokerError } from '../../src/errors.js';
import { statusOf as httpStatus } from '../../src/http/problem.js';
import { startEntraId, type EntraIdStandIn, type ManagedIdentity } from '../../src/sandbox/entraId.js';
import { AUDIENCE, problemOf, startHarness, type Harness } from '../support/harness.js';

/** The verified-token cache seen from outside: what it must never let through. */
async function statusOf(validation: Promise<unknown>): Promise<number> {
  try {
    await validation;
    return 200;
  } catch (error) {
    if (error instanceof BrokerError) return httpStatus(error);
    throw error;
  }
}

describe('verified caller tokens, through the real validator', () => {
  let entra: EntraIdStandIn;
  let metadata: OpenIdMetadata;
  let validator: CallerTokenValidator;
  let caller: ManagedIdentity;

  beforeAll(async () => {
    entra = await startEntraId();
    caller = { name: 'cached', objectId: crypto.randomUUID(), clientId: crypto.randomUUID() };
    entra.register(caller);
    metadata = new OpenIdMetadata(entra.url, entra.tenantId);
    validator = new CallerTokenValidator(metadata, { tenantId: entra.tenantId, audiences: [AUDIENCE] });
  });
  afterAll(() => entra.close());

  it('refuses a token whose signing key was withdrawn, though it was accepted before', async () => {
    const token = await entra.mint({ identity: caller, audience: AUDIENCE });
    const kid = entra.publishedKids().at(-1)!;
    expect(await statusOf(validator.validate(`Bearer ${token}`))).toBe(200);
    expect(await statusOf(validator.validate(`Bearer ${token}`))).toBe(200);
    await entra.rotateSigningKey();
    entra.withdrawKey(kid);
    for (const issuer of await metadata.all()) await issuer.keys.reload();
    expect(await statusOf(validator.validate(`Bearer ${token}`))).toBe(401);
    // The new key's tokens are still good.
    expect(await statusOf(validator.validate(`Bearer ${await entra.mint({ identity: caller, audience: AUDIENCE })}`))).toBe(200);
  });

  it('fails a token every time it is sent, never remembering a failure as a success', async () => {
    const forger = await generateKeyPair('RS256');
    const forged = await entra.mint({ identity: caller, audience: AUDIENCE, signWith: { privateKey: forger.privateKey, kid: entra.publishedKids().at(-1)! } });
    const foreign = await entra.mint({ identity: caller, audience: 'api://someone-else' });
    for (let i = 0; i < 3; i++) {
      expect(await statusOf(validator.validate(`Bearer ${forged}`))).toBe(401);
      expect(await statusOf(validator.validate(`Bearer ${foreign}`))).toBe(401);
    }
  });

  it('does not answer for an app-only check from a token verified as a delegated one', async () => {
    const delegated = await entra.mint({ identity: caller, audience: AUDIENCE, claims: { scp: 'user_impersonation' } });
    expect(await statusOf(validator.validate(`Bearer ${delegated}`, { allowDelegated: true }))).toBe(200);
    expect(await statusOf(validator.validate(`Bearer ${delegated}`))).toBe(401);
  });
});

describe('verified caller tokens, through the broker', () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await startHarness();
  });
  afterAll(() => harness.close());

  it('denies a caller blocked after its token was verified and remembered', async () => {
    const { sandbox } = harness;
    const caller = sandbox.identity('blocked-later');
    await harness.grant({ id: 'blocked-later', subjects: [{ objectId: caller.objectId }], repositories: ['later/app'], actions: ['pull'] });
    const bearer = await harness.tokenFor(caller);
    const ask = () => harness.post('/v1/tokens', { registry: sandbox.registry.host, scopes: ['repository:later/app:pull'] }, bearer);
    expect((await ask()).status).toBe(200);
    expect((await ask()).status).toBe(200);
    const blocked = await fetch(`${sandbox.broker.url}/api/v1/admin/blocks/${caller.objectId}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${await harness.tokenFor(harness.admin)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'token cache test' }),
    });
    expect(blocked.status).toBeLessThan(300);
    const denied = await ask();
    expect(denied.status).toBe(403);
    expect((await problemOf(denied)).type).toMatch(/caller-blocked/);
  });
});
