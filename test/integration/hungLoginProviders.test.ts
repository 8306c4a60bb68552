import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { jsonLineLogger } from '../../src/logger.js';
import { routes } from '../../src/routes.js';
import { startBrokerHost, type BrokerHost } from '../../src/sandbox/brokerHost.js';
import { dockerRegistryAvailable } from '../../src/sandbox/dockerRegistry.js';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { createServices } from '../../src/services.js';
import { AUDIENCE, startHarness, type Harness } from '../support/harness.js';
import { startStallingProxy, type StallingProxy } from '../support/stallingProxy.js';

/**
 * Issue 14, the two dependencies only form "login" has: the Docker Hub API (organization access
 * tokens) and ARM (ACR scope-map tokens), each hung behind a stalling proxy. Every login request
 * answers within 5 s with a problem, audited as failed, with no password in it; once the API answers
 * again the same broker hands out a credential, with its record.
 */
const BOUND_MS = 5000;
type Provider = 'hub-api' | 'arm';

describe.skipIf(!dockerRegistryAvailable())('a hung login provider is a quick refusal, never a stuck build', () => {
  let h: Harness;
  let caller: ManagedIdentity;
  let bearer: string;
  const proxies = {} as Record<Provider, StallingProxy>;
  let broker: BrokerHost | undefined;
  let url: string;
  let repositories = 0;

  beforeAll(async () => {
    h = await startHarness({ acr: true, login: true, loginOrganization: 'acme', registryTimeoutSeconds: 2 });
    proxies['hub-api'] = await startStallingProxy(h.sandbox.dockerHub!.url);
    proxies.arm = await startStallingProxy(h.sandbox.arm!.url);
    h.sandbox.arm!.acceptAudience(`http://${proxies.arm.host}`);
    caller = h.sandbox.identity('hung-login');
    for (const registry of [h.sandbox.registry.host, h.sandbox.acr!.host]) {
      await h.grant({ id: `hung-${registry.replace(/[^a-z0-9]/g, '')}`, registry, subjects: [{ objectId: caller.objectId }], repositories: ['acme/**'], actions: ['pull', 'push'] });
    }
    bearer = await h.sandbox.entra.mint({ identity: caller, audience: AUDIENCE });
    const entries = (JSON.parse(h.sandbox.env.REGISTRIES!) as { login?: Record<string, unknown> }[]).map((entry) => {
      if (entry.login?.provider === 'dockerhub-oat') return { ...entry, login: { ...entry.login, apiEndpoint: `http://${proxies['hub-api'].host}` } };
      if (entry.login?.provider === 'acr-scope-map') return { ...entry, login: { ...entry.login, armEndpoint: `http://${proxies.arm.host}` } };
      return entry;
    });
    const log = jsonLineLogger((line) => h.logs.push(line));
    broker = await startBrokerHost(routes, createServices(loadConfig({ ...h.sandbox.env, REGISTRIES: JSON.stringify(entries) }), log), log);
    url = `${broker.url}/api/v1/tokens`;
  });
  afterEach(() => {
    for (const proxy of Object.values(proxies)) proxy.resume();
  });
  afterAll(async () => {
    await broker?.close();
    for (const proxy of Object.values(proxies)) await proxy.close();
    await h?.close();
  });

  async function login(registry: string) {
    const started = performance.now();
    const response = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
      // A fresh repository each time, so no reusable credential answers.
      body: JSON.stringify({ registry, scopes: [`repository:acme/r${++repositories}:pull,push`], form: 'login', ttlSeconds: 900 }),
      signal: AbortSignal.timeout(30_000),
    });
    return { response, text: await response.text(), ms: performance.now() - started };
  }

  it.each([
    ['hub-api', () => h.sandbox.registry.host],
    ['arm', () => h.sandbox.acr!.host],
  ] as const)('%s hung: every login answers within 5 s, failed and audited, no password; then it recovers', async (provider, registry) => {
    const first = await login(registry());
    expect(first.response.status, first.text).toBe(200);
    proxies[provider].stall();
    const answers = await Promise.all(Array.from({ length: 3 }, () => login(registry())));
    for (const { response, text, ms } of answers) {
      expect(ms).toBeLessThan(BOUND_MS);
      expect([503, 504]).toContain(response.status);
      if (response.status === 503) expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(response.headers.get('content-type')).toMatch(/application\/problem\+json/);
      expect(text).not.toMatch(/"password"/);
    }
    proxies[provider].resume();
    const rows = await h.auditRecords();
    for (const { response } of answers) {
      expect(rows.find((row) => row.requestId === response.headers.get('x-request-id'))).toMatchObject({ outcome: 'failed', form: 'login' });
    }
    let last = await login(registry());
    for (let attempt = 0; attempt < 20 && last.response.status !== 200; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      last = await login(registry());
    }
    expect(last.response.status).toBe(200);
    const { issuanceId, password } = JSON.parse(last.text) as { issuanceId: string; password: string };
    expect(password).toBeTruthy();
    expect((await h.auditRecords()).find((row) => row.issuanceId === issuanceId)).toMatchObject({ outcome: 'issued', form: 'login' });
  });
});
