import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { advanceClock, installShiftableClock } from '../support/clock.js';
import { startHarness, type Harness } from '../support/harness.js';
import { writeOciImage } from '../support/ociImage.js';
import { e2eAvailable, pull, push } from '../support/skopeo.js';

/**
 * Azure Container Registry kind: the broker's own managed identity → Entra token for ACR →
 * /oauth2/exchange → /oauth2/token, against the real docker-registry behind ACR-style endpoints.
 * One test moves this process's clock hours ahead (the registry keeps real time): no test after it
 * pushes or pulls.
 */
installShiftableClock();
describe.skipIf(!e2eAvailable())('ACR upstream', () => {
  let h: Harness;
  let image: string;
  let pusher: ManagedIdentity;
  let puller: ManagedIdentity;
  const acrHost = () => h.sandbox.acr!.host;

  beforeAll(async () => {
    h = await startHarness({ acr: true });
    image = await writeOciImage('acr');
    pusher = h.sandbox.identity('acr-pusher');
    puller = h.sandbox.identity('acr-puller');
    await h.grant({ id: 'acr-push', registry: acrHost(), subjects: [{ objectId: pusher.objectId }], repositories: ['team/**'], actions: ['pull', 'push'] });
    await h.grant({ id: 'acr-pull', registry: acrHost(), subjects: [{ objectId: puller.objectId }], repositories: ['team/app'], actions: ['pull'] });
  });
  afterAll(() => h?.close());

  it('pushes and pulls with tokens from POST /api/v1/tokens', async () => {
    const response = await h.requestToken(pusher, ['repository:team/app:pull,push'], acrHost());
    if (response.status !== 200) throw new Error(await response.text());
    const body = (await response.json()) as { token: string; expiresIn: number; dockerConfig: { auths: Record<string, unknown> } };
    expect(body.expiresIn).toBeGreaterThan(60 * 60);
    expect(Object.keys(body.dockerConfig.auths)).toEqual([acrHost()]);
    expect((await push(image, `${acrHost()}/team/app:v1`, body.token)).code).toBe(0);

    const pullResponse = await h.requestToken(puller, ['repository:team/app:pull'], acrHost());
    const pullToken = ((await pullResponse.json()) as { token: string }).token;
    expect((await pull(`${acrHost()}/team/app:v1`, pullToken)).code).toBe(0);
    const refused = await push(image, `${acrHost()}/team/app:v2`, pullToken);
    expect(refused.code).not.toBe(0);
  });

  it('exchanges the Entra token once and reuses the refresh token for later scopes', async () => {
    const response = await h.requestToken(pusher, ['repository:team/other:pull'], acrHost());
    expect(response.status).toBe(200);
    expect(h.sandbox.tokens.acrExchanges()).toBe(1);
  });

  it('a refresh token near its expiry is not used: exactly one fresh exchange, then reuse again', async () => {
    const before = h.sandbox.tokens.acrExchanges();
    // The stand-in's refresh tokens live 3 h; the broker stops using one 5 min before it expires.
    advanceClock(3 * 3600_000 - 4 * 60_000);
    const responses = await Promise.all(['team/late-a', 'team/late-b'].map((repository) => h.requestToken(pusher, [`repository:${repository}:pull`], acrHost())));
    expect(responses.map((response) => response.status)).toEqual([200, 200]);
    expect(h.sandbox.tokens.acrExchanges()).toBe(before + 1);
    expect((await h.requestToken(pusher, ['repository:team/late-c:pull'], acrHost())).status).toBe(200);
    expect(h.sandbox.tokens.acrExchanges()).toBe(before + 1);
  });

  it('records ACR issuances with the managed identity as the credential', async () => {
    const records = await h.auditRecords();
    const issued = records.filter((r) => r.outcome === 'issued' && r.registry === acrHost());
    expect(issued.length).toBeGreaterThanOrEqual(2);
    expect(issued.every((r) => r.credentialVersion === 'managed-identity')).toBe(true);
  });
});
