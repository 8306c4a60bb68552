import { afterAll, beforeAll, expect, it } from 'vitest';
import type { BrokerHost } from '../../src/sandbox/brokerHost.js';
import { advanceClock, installShiftableClock } from '../support/clock.js';
import { startHarness, type Harness } from '../support/harness.js';
import { startTableProxy, type TableProxy } from '../support/tableProxy.js';

/**
 * GET /v1/health names each dependency that is down, and one probe result serves every caller for
 * 10 s (it is anonymous). Entra down is covered with a cold instance in callerTokenEdges.test.ts.
 * Table Storage goes down for a second instance only, through a proxy, so the rest keeps working.
 */
installShiftableClock();
const CACHE_MS = 10_000;
let h: Harness;
let proxy: TableProxy;
let other: BrokerHost;

beforeAll(async () => {
  h = await startHarness();
  proxy = await startTableProxy(h.sandbox.azurite.port);
  other = await h.startInstance({ tables: { kind: 'connectionString', value: proxy.connectionString } });
});
afterAll(async () => {
  await h?.close();
  await proxy?.close();
});

async function health(base = h.sandbox.broker.url) {
  const response = await fetch(`${base}/api/v1/health`);
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body: (await response.json()) as Record<string, unknown> };
}
const allOk = { status: 200, body: { status: 'ok', checks: { tableStorage: 'ok', keyVault: 'ok', identityProvider: 'ok' } } };
const down = (name: string) => ({ status: 503, retryAfter: '10', body: { type: 'urn:registry-broker:problem:dependency-unavailable', detail: `Down: ${name}.`, errors: [{ path: name, message: 'unreachable' }] } });

it('a new deployment, before its first grant (no grants table yet), is healthy', async () => {
  expect(await health()).toMatchObject(allOk);
});

it('Key Vault down: 503 naming only Key Vault, reported for 10 s, then recovered', async () => {
  advanceClock(CACHE_MS);
  h.sandbox.keyVault.setDown(true);
  try {
    expect(await health()).toMatchObject(down('keyVault'));
  } finally {
    h.sandbox.keyVault.setDown(false);
  }
  advanceClock(CACHE_MS - 1000);
  expect((await health()).status).toBe(503); // the same result, for every caller, until 10 s have passed
  advanceClock(1500);
  expect(await health()).toMatchObject(allOk);
});

it('one probe serves every caller for 10 s: a burst of anonymous calls reaches Key Vault once', async () => {
  advanceClock(CACHE_MS);
  const before = h.sandbox.keyVault.requests();
  const answers = await Promise.all(Array.from({ length: 20 }, () => health()));
  expect(answers.map((answer) => answer.status)).toEqual(Array(20).fill(200));
  expect(h.sandbox.keyVault.requests() - before).toBe(1);
});

it('Table Storage unreachable: 503 naming only Table Storage', async () => {
  expect(await health(other.url)).toMatchObject(allOk);
  proxy.cutOff(['grants']);
  try {
    advanceClock(CACHE_MS);
    expect(await health(other.url)).toMatchObject(down('tableStorage'));
  } finally {
    proxy.cutOff([]);
  }
  advanceClock(CACHE_MS);
  expect(await health(other.url)).toMatchObject(allOk);
});
