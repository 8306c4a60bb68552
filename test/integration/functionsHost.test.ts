import azureFunctions, { type Timer } from '@azure/functions';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { allowedMethods } from '../../src/http/dispatch.js';
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
    'adminExplain',
    'adminLoginCredentials',
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

it('an unexpected error: 500 problem+json naming the request, and one error log line with that id', async () => {
  const bearer = await h.tokenFor(h.admin);
  const request = new azureFunctions.HttpRequest({
    method: 'POST',
    url: 'https://broker.example/api/v1/admin/grants',
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
  });
  // The host loses the connection while the body streams in: an error no handler anticipates.
  Object.defineProperty(request, 'body', { value: new ReadableStream({ pull: (controller) => controller.error(new Error('socket hang up')) }) });
  const lines: { level: string; text: string }[] = [];
  const context = new azureFunctions.InvocationContext({
    invocationId: 'inv-unexpected',
    functionName: 'adminGrants',
    logHandler: (level, ...args) => lines.push({ level, text: args.map(String).join(' ') }),
  });
  const response = await functionsHandler(routes.find((r) => r.name === 'adminGrants')!, () => h.sandbox.services)(request, context);

  expect(response.status).toBe(500);
  expect((response.headers as Record<string, string>)['Content-Type']).toMatch(/problem\+json/);
  const problem = JSON.parse(String(response.body)) as Record<string, unknown>;
  expect(problem).toMatchObject({ status: 500, type: 'urn:registry-broker:problem:internal-error', requestId: 'inv-unexpected' });
  // What went wrong is for the log, not for the caller.
  expect(JSON.stringify(problem)).not.toMatch(/socket hang up|\.ts:\d+/);
  const errors = lines.filter((line) => line.level === 'error');
  expect(errors).toHaveLength(1);
  expect(JSON.parse(errors[0]!.text)).toMatchObject({ route: 'adminGrants', requestId: 'inv-unexpected', error: expect.stringContaining('socket hang up') });
  expect(errors[0]!.text).not.toContain(bearer.split('.')[2]);
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

it('passes route parameters through: a grant created through the adapter is read back by its id', async () => {
  const authorization = `Bearer ${await h.tokenFor(h.admin)}`;
  const grant = { id: 'via-adapter', subjects: [{ objectId: h.sandbox.identity('someone').objectId }], registry: h.sandbox.registry.host, repositories: ['acme/x'], actions: ['pull'] };
  const created = await invoke('adminGrants', { method: 'POST', path: 'v1/admin/grants', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify(grant) });
  expect(created.status).toBe(201);
  const createdEtag = (created.headers as Record<string, string>).ETag;
  expect(createdEtag).toBeTruthy();

  const read = await invoke('adminGrant', { method: 'GET', path: 'v1/admin/grants/via-adapter', params: { id: 'via-adapter' }, headers: { authorization } });
  expect(read.status).toBe(200);
  expect(JSON.parse(String(read.body))).toMatchObject({ id: 'via-adapter', repositories: ['acme/x'] });
  expect((read.headers as Record<string, string>).ETag).toBe(createdEtag);
});

it('the production entry registers every route and the rotation timer, wired to working services', async () => {
  const http = vi.spyOn(azureFunctions.app, 'http');
  const timer = vi.spyOn(azureFunctions.app, 'timer');
  const saved = { ...process.env };
  // @azure/identity reads AZURE_AUTHORITY_HOST too and insists on https, which the local Entra is not:
  // the entry gets the public authority, so only the identity-provider probe cannot succeed here.
  const { AZURE_AUTHORITY_HOST: _local, ...settings } = h.sandbox.env;
  Object.assign(process.env, settings);
  try {
    await import('../../src/index.js');
  } finally {
    process.env = saved;
  }
  expect(http.mock.calls.map(([name, options]) => [name, options.route, options.methods, options.authLevel])).toEqual(
    routes.map((route) => [route.name, route.route, allowedMethods(route), 'anonymous']),
  );
  expect(timer.mock.calls.map(([name, options]) => [name, options.schedule, options.useMonitor])).toEqual([
    ['credentialRotation', '0 */15 * * * *', true],
    ['loginCredentialCleanup', '*/30 * * * * *', true],
  ]);

  // The registered handlers run on the services index.ts built from the settings.
  const health = http.mock.calls.find(([name]) => name === 'health')![1].handler;
  const context = new azureFunctions.InvocationContext({ invocationId: 'inv-health', functionName: 'health', logHandler: () => undefined });
  const answer = await health(new azureFunctions.HttpRequest({ method: 'GET', url: 'https://broker.example/api/v1/health' }), context);
  // Table Storage and Key Vault answered through the entry's own clients and managed identity.
  expect(answer.status).toBe(503);
  expect(JSON.parse(String(answer.body))).toMatchObject({ errors: [{ path: 'identityProvider' }] });
  const rotation = timer.mock.calls[0]![1].handler;
  await expect(Promise.resolve(rotation({ isPastDue: false } as Timer, context))).resolves.toBeUndefined();
});
