import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allowedMethods } from '../../src/http/dispatch.js';
import { routes } from '../../src/routes.js';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { startHarness, type Harness } from '../support/harness.js';

/**
 * The served OpenAPI document is valid OpenAPI 3.1, names every route, and tells the truth: every
 * answer the live handlers give below has a documented status and a body that fits its schema.
 */
type Doc = { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: object }> }> }>>; components: object };

let h: Harness;
let doc: Doc;
let workload: ManagedIdentity;
const ajv = new Ajv2020({ strict: false, allErrors: true });
(addFormats as unknown as (a: Ajv2020) => void)(ajv);
const checked: string[] = [];

beforeAll(async () => {
  h = await startHarness();
  workload = h.sandbox.identity('workload');
  doc = (await (await fetch(`${h.sandbox.broker.url}/api/v1/openapi.json`)).json()) as Doc;
  ajv.addSchema({ $id: 'doc', ...doc.components }, 'doc');
});
afterAll(() => h?.close());

/** Calls the live API and checks the answer against the document. */
async function call(method: string, template: string, path: string, init: { body?: unknown; bearer?: string; headers?: Record<string, string> } = {}) {
  const response = await fetch(`${h.sandbox.broker.url}${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', ...(init.bearer ? { Authorization: `Bearer ${init.bearer}` } : {}), ...init.headers },
    ...(init.body === undefined ? {} : { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) }),
  });
  const operation = doc.paths[template]?.[method.toLowerCase()];
  expect(operation, `${method} ${template} is documented`).toBeDefined();
  const documented = operation!.responses[String(response.status)];
  expect(documented, `${method} ${template} → ${response.status} is documented`).toBeDefined();
  const contentType = (response.headers.get('content-type') ?? '').split(';')[0]!;
  const text = await response.text();
  if (documented!.content) {
    const media = documented!.content[contentType];
    expect(media, `${method} ${template} → ${response.status} documents ${contentType}`).toBeDefined();
    const schema = JSON.parse(JSON.stringify(media!.schema).replaceAll('#/components/', 'doc#/'));
    const validate = ajv.compile(schema);
    const valid = validate(JSON.parse(text));
    expect(valid, `${method} ${template} → ${response.status}: ${ajv.errorsText(validate.errors)}`).toBe(true);
  }
  checked.push(`${method} ${template} ${response.status}`);
  return { status: response.status, headers: response.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

describe('the document', () => {
  it('validates as OpenAPI 3.1', async () => {
    const validator = new Validator();
    const result = await validator.validate(doc as unknown as Parameters<Validator['validate']>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect((doc as unknown as { openapi: string }).openapi).toBe('3.1.0');
  });

  it('describes every route and method in the route table, and nothing else', () => {
    const fromTable = routes.flatMap((route) => allowedMethods(route).map((method) => `${method.toLowerCase()} /api/${route.route}`)).sort();
    const fromDoc = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method} ${path}`)).sort();
    expect(fromDoc).toEqual(fromTable);
  });
});

describe('the live handlers answer as documented', () => {
  const T = '/api/v1/tokens';
  const G = '/api/v1/admin/grants';
  const GI = '/api/v1/admin/grants/{id}';

  it('tokens', async () => {
    const bearer = await h.tokenFor(workload);
    const admin = await h.tokenFor(h.admin);
    const registry = h.sandbox.registry.host;
    await call('POST', G, G, { bearer: admin, body: { id: 'doc', subjects: [{ objectId: workload.objectId }], registry, repositories: ['acme/**'], actions: ['pull'] } });
    expect((await call('POST', T, T, { bearer, body: { registry, scopes: ['repository:acme/web:pull'] } })).status).toBe(200);
    expect((await call('POST', T, T, { bearer, body: '{' })).status).toBe(400);
    expect((await call('POST', T, T, { body: { registry, scopes: ['repository:acme/web:pull'] } })).status).toBe(401);
    expect((await call('POST', T, T, { bearer, body: { registry, scopes: ['repository:acme/web:push'] } })).status).toBe(403);
    expect((await call('POST', T, T, { bearer, body: { registry: 'quay.io', scopes: ['repository:acme/web:pull'] } })).status).toBe(404);
    expect((await call('POST', T, T, { bearer, body: 'x'.repeat(20_000) })).status).toBe(413);
  });

  it('health and the document itself', async () => {
    expect((await call('GET', '/api/v1/health', '/api/v1/health')).status).toBe(200);
    expect((await call('GET', '/api/v1/openapi.json', '/api/v1/openapi.json')).status).toBe(200);
  });

  it('admin grants', async () => {
    const admin = await h.tokenFor(h.admin);
    const grant = { id: 'g1', subjects: [{ objectId: workload.objectId }], registry: h.sandbox.registry.host, repositories: ['a/b'], actions: ['pull'] };
    expect((await call('GET', G, G, { bearer: await h.tokenFor(workload) })).status).toBe(403);
    expect((await call('GET', G, G)).status).toBe(401);
    const created = await call('POST', G, G, { bearer: admin, body: grant });
    expect(created.status).toBe(201);
    expect((await call('POST', G, G, { bearer: admin, body: grant })).status).toBe(409);
    expect((await call('POST', G, G, { bearer: admin, body: { ...grant, actions: ['own'] } })).status).toBe(400);
    expect((await call('GET', G, G, { bearer: admin })).status).toBe(200);
    const read = await call('GET', GI, `${G}/g1`, { bearer: admin });
    expect(read.status).toBe(200);
    expect((await call('GET', GI, `${G}/nope`, { bearer: admin })).status).toBe(404);
    expect((await call('PUT', GI, `${G}/g1`, { bearer: admin, body: grant })).status).toBe(428);
    const etag = read.headers.get('etag')!;
    expect((await call('PUT', GI, `${G}/g1`, { bearer: admin, body: grant, headers: { 'If-Match': etag } })).status).toBe(200);
    expect((await call('PUT', GI, `${G}/g1`, { bearer: admin, body: grant, headers: { 'If-Match': etag } })).status).toBe(412);
    const fresh = (await call('GET', GI, `${G}/g1`, { bearer: admin })).headers.get('etag')!;
    expect((await call('DELETE', GI, `${G}/g1`, { bearer: admin, headers: { 'If-Match': fresh } })).status).toBe(204);
  });

  it('admin credentials', async () => {
    const admin = await h.tokenFor(h.admin);
    const C = '/api/v1/admin/credentials';
    const R = '/api/v1/admin/credentials/{registry}/rotate';
    expect((await call('GET', C, C, { bearer: admin })).status).toBe(200);
    expect((await call('GET', C, C, { bearer: await h.tokenFor(workload) })).status).toBe(403);
    const registry = encodeURIComponent(h.sandbox.registry.host);
    expect((await call('POST', R, `${C}/${registry}/rotate`, { bearer: admin })).status).toBe(409);
    expect((await call('POST', R, `${C}/quay.io/rotate`, { bearer: admin })).status).toBe(404);
    expect((await call('POST', R, `${C}/${registry}/rotate`)).status).toBe(401);
  });

  it('blocks, issuance search and the admin audit', async () => {
    const admin = await h.tokenFor(h.admin);
    const B = '/api/v1/admin/blocks';
    const BI = '/api/v1/admin/blocks/{objectId}';
    const blocked = h.sandbox.identity('blocked');
    expect((await call('PUT', BI, `${B}/${blocked.objectId}`, { bearer: admin, body: { reason: 'compromised' } })).status).toBe(200);
    expect((await call('PUT', BI, `${B}/not-a-guid`, { bearer: admin, body: { reason: 'x' } })).status).toBe(400);
    expect((await call('GET', B, B, { bearer: admin })).status).toBe(200);
    expect((await call('DELETE', BI, `${B}/${blocked.objectId}`, { bearer: admin })).status).toBe(204);
    expect((await call('DELETE', BI, `${B}/${blocked.objectId}`, { bearer: admin })).status).toBe(404);
    const I = '/api/v1/admin/issuances';
    expect((await call('GET', I, `${I}?limit=5&outcome=issued`, { bearer: admin })).status).toBe(200);
    expect((await call('GET', I, `${I}?limit=5000`, { bearer: admin })).status).toBe(400);
    expect((await call('GET', I, I, { bearer: await h.tokenFor(workload) })).status).toBe(403);
    const A = '/api/v1/admin/audit';
    const audit = await call('GET', A, A, { bearer: admin });
    expect(audit.status).toBe(200);
    expect((audit.body as { entries: unknown[] }).entries.length).toBeGreaterThan(0);
    expect((await call('GET', A, `${A}?cursor=bogus`, { bearer: admin })).status).toBe(400);
  });

  it('admin explain', async () => {
    const admin = await h.tokenFor(h.admin);
    const E = '/api/v1/admin/explain';
    const question = { subject: { objectId: workload.objectId }, registry: h.sandbox.registry.host, scopes: ['repository:a/b:pull'] };
    expect((await call('POST', E, E, { bearer: admin, body: question })).status).toBe(200);
    expect((await call('POST', E, E, { bearer: admin, body: { ...question, subject: {} } })).status).toBe(400);
    expect((await call('POST', E, E, { bearer: admin, body: { ...question, registry: 'quay.io' } })).status).toBe(404);
    expect((await call('POST', E, E, { bearer: await h.tokenFor(workload), body: question })).status).toBe(403);
    expect((await call('POST', E, E, { body: question })).status).toBe(401);
  });

  it('admin login credentials', async () => {
    const L = '/api/v1/admin/login-credentials';
    expect((await call('GET', L, L, { bearer: await h.tokenFor(h.admin) })).status).toBe(200);
    expect((await call('GET', L, L, { bearer: await h.tokenFor(workload) })).status).toBe(403);
    expect((await call('GET', L, L)).status).toBe(401);
  });

  it('exercised every documented operation', () => {
    const operations = new Set(checked.map((entry) => entry.split(' ').slice(0, 2).join(' ')));
    const documented = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`));
    expect([...operations].sort()).toEqual(documented.sort());
  });
});
