import azureFunctions from '@azure/functions';
import type { HttpResponseInit } from '@azure/functions';
import Module from 'node:module';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { routes } from '../../src/routes.js';

/**
 * src/index.ts as the Functions host loads it. Outside the host @azure/functions registers nothing
 * (DESIGN.md §11), so this file stands in for the worker's `@azure/functions-core` module — the
 * host's side of registration — records what index.ts registers, and calls those handlers directly.
 */
type Registered = { metadata: { name: string; bindings: Record<string, { type: string; route?: string }> }; handler: (...args: unknown[]) => Promise<HttpResponseInit> };
const registered = new Map<string, Registered>();
const workerCore = {
  setProgrammingModel: () => undefined,
  registerFunction: (metadata: Registered['metadata'], handler: Registered['handler']) => {
    registered.set(metadata.name, { metadata, handler });
    return { dispose: () => undefined };
  },
  registerHook: () => ({ dispose: () => undefined }),
};
const moduleInternals = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
const load = moduleInternals._load;
moduleInternals._load = function (request: string, ...rest: unknown[]) {
  return request === '@azure/functions-core' ? workerCore : load.call(this, request, ...rest);
};

const SETTINGS = ['BROKER_TENANT_ID', 'BROKER_AUDIENCES', 'AZURE_AUTHORITY_HOST', 'KEY_VAULT_URL', 'TABLES_ENDPOINT', 'TABLES_CONNECTION_STRING', 'REGISTRIES'];
const valid = {
  BROKER_TENANT_ID: '72f988bf-86f1-41af-91ab-2d7cd011db47',
  BROKER_AUDIENCES: 'api://72f988bf-86f1-41af-91ab-2d7cd011db47/registry-broker-prod',
  KEY_VAULT_URL: 'https://kv-example.vault.azure.net',
  TABLES_ENDPOINT: 'https://stexample.table.core.windows.net',
  REGISTRIES: '[{"kind":"dockerhub","credentialSecret":"dockerhub"}]',
};

let logLines: string[];
beforeEach(() => {
  registered.clear();
  vi.resetModules();
  for (const name of SETTINGS) delete process.env[name];
  logLines = [];
  vi.spyOn(console, 'log').mockImplementation((line: string) => void logLines.push(line));
});
afterEach(() => vi.restoreAllMocks());

async function loadEntry(env: Record<string, string>) {
  Object.assign(process.env, env);
  await import('../../src/index.js');
}

const trigger = (name: string) => Object.values(registered.get(name)!.metadata.bindings).find((binding) => binding.type === 'httpTrigger');

function get(name: string, path: string) {
  const request = new azureFunctions.HttpRequest({ method: 'GET', url: `https://func-example.azurewebsites.net/api/${path}`, headers: {} });
  const context = new azureFunctions.InvocationContext({ invocationId: 'inv-health', functionName: name, logHandler: () => undefined });
  return registered.get(name)!.handler(request, context);
}

it('with valid settings registers every route of the route table and the rotation timer', async () => {
  await loadEntry(valid);
  expect([...registered.keys()]).toEqual(expect.arrayContaining([...routes.map((route) => route.name), 'credentialRotation']));
  const timers = [...registered.values()].filter((r) => Object.values(r.metadata.bindings).some((b) => b.type === 'timerTrigger')).map((r) => r.metadata.name);
  expect([...registered.keys()].sort()).toEqual([...routes.map((route) => route.name), ...timers].sort());
  expect(trigger('health')).toMatchObject({ route: 'v1/health', methods: ['GET'], authLevel: 'anonymous' });
});

it('with invalid settings still registers /api/v1/health, which answers 503 naming the bad settings and never their values', async () => {
  const secret = 'AccountKey=c2VjcmV0LXZhbHVlLW5ldmVyLXNob3du';
  await loadEntry({
    ...valid,
    BROKER_TENANT_ID: 'not-a-tenant',
    // Both ways to reach tables at once: TABLES_ENDPOINT is reported, the connection string's key must not be.
    TABLES_CONNECTION_STRING: `DefaultEndpointsProtocol=https;AccountName=stexample;${secret}`,
    REGISTRIES: '[{"kind":"dockerhub","credentialSecret":"dockerhub","password":"hunter2-do-not-echo"}]',
  });
  expect([...registered.keys()]).toEqual(['health']);
  expect(trigger('health')).toMatchObject({ route: 'v1/health', methods: ['GET'], authLevel: 'anonymous' });

  const response = await get('health', 'v1/health');
  expect(response.status).toBe(503);
  expect(response.headers).toMatchObject({ 'Content-Type': expect.stringMatching(/^application\/problem\+json/), 'Retry-After': '60' });
  const body = JSON.parse(String(response.body)) as { type: string; status: number; detail: string; errors: { path: string }[]; requestId: string };
  expect(body).toMatchObject({ type: 'urn:registry-broker:problem:settings-invalid', status: 503, requestId: 'inv-health' });
  expect(body.errors.map((e) => e.path).sort()).toEqual(['BROKER_TENANT_ID', 'REGISTRIES', 'TABLES_ENDPOINT']);
  for (const name of ['BROKER_TENANT_ID', 'REGISTRIES', 'TABLES_ENDPOINT']) expect(body.detail).toContain(name);

  const log = logLines.map((line) => JSON.parse(line) as { level: string; message: string; settings: string[] });
  expect(log).toEqual([expect.objectContaining({ level: 'error', message: 'broker settings are invalid', settings: ['BROKER_TENANT_ID', 'REGISTRIES', 'TABLES_ENDPOINT'] })]);
  for (const text of [String(response.body), ...logLines]) {
    for (const value of ['not-a-tenant', secret, 'hunter2-do-not-echo', 'c2VjcmV0']) expect(text).not.toContain(value);
  }
});

it('with no settings at all names every required one', async () => {
  await loadEntry({});
  const body = JSON.parse(String((await get('health', 'v1/health')).body)) as { errors: { path: string }[] };
  expect(body.errors.map((e) => e.path)).toEqual(['BROKER_TENANT_ID', 'BROKER_AUDIENCES', 'KEY_VAULT_URL', 'REGISTRIES']);
});
