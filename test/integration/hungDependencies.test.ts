import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { jsonLineLogger } from '../../src/logger.js';
import { routes } from '../../src/routes.js';
import { tablesConnectionString } from '../../src/sandbox/azurite.js';
import { startBrokerHost, type BrokerHost } from '../../src/sandbox/brokerHost.js';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { createServices } from '../../src/services.js';
import { AUDIENCE, startHarness, type Harness } from '../support/harness.js';
import { startStallingProxy, type StallingProxy } from '../support/stallingProxy.js';

/**
 * Each dependency hung, not down: its port accepts connections and never answers, as a frozen
 * process or a black-holed route does. Every request must still get its 503 (504 for the registry)
 * in bounded time, no token may leave without its audit record, and service resumes by itself once
 * the dependency answers again. A broker built fresh for each case has nothing cached that would hide
 * the dependency.
 */
type Dependency = 'tables' | 'key-vault' | 'entra-metadata' | 'registry';
/** Every request answers within this, whatever hangs (issue 14). */
const BOUND_MS = 5000;
const REGISTRY_TIMEOUT_SECONDS = 3;

let h: Harness;
let caller: ManagedIdentity;
let bearer: string;
const proxies = {} as Record<Dependency, StallingProxy>;
let broker: BrokerHost | undefined;

beforeAll(async () => {
  h = await startHarness({ registryTimeoutSeconds: REGISTRY_TIMEOUT_SECONDS });
  const { sandbox } = h;
  proxies.tables = await startStallingProxy({ host: '127.0.0.1', port: sandbox.azurite.port });
  proxies['key-vault'] = await startStallingProxy(sandbox.keyVault.url);
  proxies['entra-metadata'] = await startStallingProxy(sandbox.entra.url);
  proxies.registry = await startStallingProxy(sandbox.tokens.url);
  caller = sandbox.identity('hung-workload');
  await h.grant({ id: 'hung', subjects: [{ objectId: caller.objectId }], repositories: ['hung/**'], actions: ['pull'] });
  bearer = await sandbox.entra.mint({ identity: caller, audience: AUDIENCE });
});
afterEach(async () => {
  for (const proxy of Object.values(proxies)) proxy.resume();
  await broker?.close();
  broker = undefined;
});
afterAll(async () => {
  for (const proxy of Object.values(proxies)) await proxy.close();
  await h?.close();
});

/** A broker whose every dependency is reached through its stalling proxy. */
async function freshBroker(): Promise<string> {
  const { sandbox } = h;
  const [entry] = JSON.parse(sandbox.env.REGISTRIES!) as Record<string, unknown>[];
  const config = loadConfig({
    ...sandbox.env,
    AZURE_AUTHORITY_HOST: `http://${proxies['entra-metadata'].host}`,
    KEY_VAULT_URL: `http://${proxies['key-vault'].host}`,
    TABLES_CONNECTION_STRING: tablesConnectionString(proxies.tables.port),
    // Once /v2/ is known the registry is reached at its token realm: pin that behind the proxy.
    REGISTRIES: JSON.stringify([{ ...entry, timeoutSeconds: REGISTRY_TIMEOUT_SECONDS, realm: `http://${proxies.registry.host}/token`, service: sandbox.tokens.service }]),
  });
  const log = jsonLineLogger((line) => h.logs.push(line));
  broker = await startBrokerHost(routes, createServices(config, log), log);
  return `${broker.url}/api/v1/tokens`;
}

let repositories = 0;
async function ask(url: string) {
  const started = performance.now();
  const response = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    // A fresh repository each time, so no pooled upstream token answers for the registry.
    body: JSON.stringify({ registry: h.sandbox.registry.host, scopes: [`repository:hung/r${++repositories}:pull`] }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  return { response, text, ms: performance.now() - started };
}

/** Every answer bounded, with the status asked for, and not one token among them. */
async function expectBoundedRefusals(url: string, status: number, code: RegExp) {
  const answers = await Promise.all(Array.from({ length: 5 }, () => ask(url)));
  for (const { response, text, ms } of answers) {
    expect({ status: response.status, text: text.slice(0, 200) }).toMatchObject({ status });
    expect(ms).toBeLessThan(BOUND_MS);
    if (status === 503) expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
    const problem = JSON.parse(text) as Record<string, unknown>;
    expect(String(problem.type)).toMatch(code);
    expect(problem).not.toHaveProperty('token');
  }
  return answers;
}

/** Once the dependency answers again, the same broker issues, and the issuance has its record. */
async function expectRecovery(url: string) {
  let last: Awaited<ReturnType<typeof ask>> | undefined;
  for (let attempt = 0; attempt < 20 && last?.response.status !== 200; attempt++) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 250));
    last = await ask(url);
  }
  expect(last!.response.status).toBe(200);
  const { issuanceId } = JSON.parse(last!.text) as { issuanceId: string };
  const record = (await h.auditRecords()).find((row) => row.issuanceId === issuanceId);
  expect(record).toMatchObject({ outcome: 'issued' });
}

describe('a hung dependency is a quick 503 (504 for the registry), never a stuck request', () => {
  it('Table Storage: the audit write cannot finish, so nothing is issued; service resumes by itself', async () => {
    const url = await freshBroker();
    expect((await ask(url)).response.status).toBe(200);
    proxies.tables.stall();
    // A record the hung write held may still land once the table answers; the token never left.
    await expectBoundedRefusals(url, 503, /audit|grant-store|block-list/);
    proxies.tables.resume();
    await expectRecovery(url);
  });

  it('Key Vault: no stored credential can be read, nothing cached: 503 key-vault', async () => {
    const url = await freshBroker();
    proxies['key-vault'].stall();
    const answers = await expectBoundedRefusals(url, 503, /key-vault|credential/);
    proxies['key-vault'].resume();
    const rows = await h.auditRecords();
    for (const { response } of answers) {
      expect(rows.find((row) => row.requestId === response.headers.get('x-request-id'))).toMatchObject({ outcome: 'failed', status: 503 });
    }
    await expectRecovery(url);
  });

  it('Entra ID metadata: tokens cannot be checked: 503 identity-provider', async () => {
    const url = await freshBroker();
    proxies['entra-metadata'].stall();
    await expectBoundedRefusals(url, 503, /identity-provider/);
    proxies['entra-metadata'].resume();
    await expectRecovery(url);
  });

  it('the registry\'s token service: 504 after the entry\'s timeout, audited as failed', async () => {
    const url = await freshBroker();
    proxies.registry.stall();
    const answers = await expectBoundedRefusals(url, 504, /timeout/);
    proxies.registry.resume();
    const rows = await h.auditRecords();
    for (const { response } of answers) {
      expect(rows.find((row) => row.requestId === response.headers.get('x-request-id'))).toMatchObject({ outcome: 'failed', status: 504 });
    }
    await expectRecovery(url);
  });
});

it('problem bodies of hung dependencies name no secret', async () => {
  const url = await freshBroker();
  proxies['key-vault'].stall();
  const { text } = await ask(url);
  proxies['key-vault'].resume();
  expect(text).not.toContain(h.sandbox.registryPassword);
  expect(text).not.toContain(bearer);
});

describe('admin routes with a hung dependency answer in bounded time too', () => {
  /** Every admin read of a store, as an operator's CLI or dashboard calls it. */
  const reads = [
    '/v1/admin/grants',
    '/v1/admin/grants/hung',
    '/v1/admin/blocks',
    '/v1/admin/issuances?limit=1',
    '/v1/admin/issuances?limit=1&repository=hung/r1',
    '/v1/admin/audit?limit=1',
    '/v1/admin/credentials',
    '/v1/admin/login-credentials',
  ];

  async function adminGet(base: string, path: string) {
    const bearer = await h.tokenFor(h.admin);
    const started = performance.now();
    try {
      const response = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${bearer}` }, signal: AbortSignal.timeout(BOUND_MS * 2) });
      await response.text();
      return { path, status: response.status, retryAfter: Number(response.headers.get('retry-after')), ms: performance.now() - started };
    } catch {
      return { path, status: 0, retryAfter: 0, ms: performance.now() - started };
    }
  }
  const readAll = (base: string) => Promise.all(reads.map((path) => adminGet(base, path)));

  for (const dependency of ['tables', 'key-vault'] as const) {
    it(`${dependency}: every admin read answers within the bound (a 503 with Retry-After, or what it could read), and again after`, async () => {
      const base = (await freshBroker()).replace(/\/v1\/tokens$/, '');
      // Healthy, every read answers, a search before the first issuance included (an empty page, not an outage).
      expect((await readAll(base)).map((answer) => [answer.path, answer.status])).toEqual(reads.map((path) => [path, 200]));
      proxies[dependency].stall();
      const hung = await readAll(base);
      proxies[dependency].resume();
      for (const answer of hung) {
        expect({ path: answer.path, bounded: answer.ms < BOUND_MS }).toEqual({ path: answer.path, bounded: true });
        if (answer.status !== 200) expect({ path: answer.path, status: answer.status, retryAfter: answer.retryAfter > 0 }).toEqual({ path: answer.path, status: 503, retryAfter: true });
      }
      expect((await readAll(base)).map((answer) => [answer.path, answer.status])).toEqual(reads.map((path) => [path, 200]));
    });
  }
});
