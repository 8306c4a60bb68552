import azureFunctions from '@azure/functions';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { functionsHandler } from '../../src/functionsHost.js';
import { routes } from '../../src/routes.js';
import { startHarness, type Harness } from '../support/harness.js';

/** The Azure Functions entry runs the same handlers as the sandbox host, from the same route table. */
let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h?.close());

function invoke(routeName: string, init: { method: string; path: string; headers?: Record<string, string>; body?: string; params?: Record<string, string> }) {
  const route = routes.find((r) => r.name === routeName)!;
  const request = new azureFunctions.HttpRequest({
    method: init.method,
    url: `https://broker.example/api/${init.path}`,
    headers: { 'x-forwarded-for': '198.51.100.66, 203.0.113.7:5555', ...init.headers },
    ...(init.body === undefined ? {} : { body: { string: init.body } }),
    params: init.params ?? {},
  });
  const context = new azureFunctions.InvocationContext({ invocationId: `inv-${Math.random()}`, functionName: routeName, logHandler: () => undefined });
  return functionsHandler(route, () => h.sandbox.services)(request, context);
}

it('every route has a name, a template and at least one method', () => {
  expect(routes.map((r) => r.name)).toEqual([
    'tokens',
    'health',
    'adminGrants',
    'adminGrant',
    'adminBlocks',
    'adminBlock',
    'adminIssuances',
    'adminAudit',
    'adminCredentials',
    'adminRotate',
    'openapi',
  ]);
  for (const route of routes) expect(Object.keys(route.operations).length).toBeGreaterThan(0);
});

it('issues a token through the Functions adapter and audits it with the invocation id', async () => {
  const workload = h.sandbox.identity('workload');
  await h.grant({ id: 'web', subjects: [{ objectId: workload.objectId }], repositories: ['acme/web'], actions: ['pull'] });
  const response = await invoke('tokens', {
    method: 'POST',
    path: 'v1/tokens',
    headers: { authorization: `Bearer ${await h.tokenFor(workload)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ registry: h.sandbox.registry.host, scopes: ['repository:acme/web:pull'] }),
  });
  expect(response.status).toBe(200);
  const body = JSON.parse(String(response.body)) as { issuanceId: string; token: string };
  expect(body.token).toBeTruthy();
  const record = (await h.auditRecords()).find((r) => r.issuanceId === body.issuanceId);
  expect(record?.requestId).toMatch(/^inv-/);
  expect(record?.clientIp).toBe('203.0.113.7');
});

it('refuses an oversized body with 413 problem+json', async () => {
  const workload = h.sandbox.identity('big');
  const response = await invoke('tokens', {
    method: 'POST',
    path: 'v1/tokens',
    headers: { authorization: `Bearer ${await h.tokenFor(workload)}` },
    body: 'x'.repeat(20_000),
  });
  expect(response.status).toBe(413);
  expect((response.headers as Record<string, string>)['Content-Type']).toMatch(/problem\+json/);
});

it('passes route parameters through', async () => {
  const response = await invoke('adminGrant', {
    method: 'GET',
    path: 'v1/admin/grants/missing',
    params: { id: 'missing' },
    headers: { authorization: `Bearer ${await h.tokenFor(h.admin)}` },
  });
  expect(response.status).toBe(404);
});
