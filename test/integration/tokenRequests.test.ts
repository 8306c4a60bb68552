import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';

/** Bad input is a clear 4xx problem+json, audited, never a 5xx, never a crash. */
let h: Harness;
let caller: ManagedIdentity;
let bearer: string;

beforeAll(async () => {
  h = await startHarness();
  caller = h.sandbox.identity('workload');
  bearer = await h.tokenFor(caller);
  await h.grant({ id: 'web', subjects: [{ objectId: caller.objectId }], repositories: ['acme/**'], actions: ['pull', 'push'] });
});
afterAll(() => h?.close());

async function expectProblem(response: Response, status: number, code: string) {
  expect(response.status).toBe(status);
  const problem = await problemOf(response);
  expect(problem).toMatchObject({ status, type: `urn:registry-broker:problem:${code}` });
  expect(problem.requestId).toBe(response.headers.get('x-request-id'));
  const record = (await h.auditRecords()).find((r) => r.requestId === problem.requestId);
  expect(record).toMatchObject({ outcome: 'denied', reason: code, status, objectId: caller.objectId });
  return problem;
}

const tokens = (body: unknown) => h.post('/v1/tokens', body, bearer);
const registry = () => h.sandbox.registry.host;

describe('request body', () => {
  it('malformed JSON', async () => {
    await expectProblem(await tokens('{"registry": '), 400, 'bad-request');
  });

  it.each([
    ['an array', []],
    ['null', null],
    ['no scopes', { registry: 'x' }],
    ['scopes not an array', { registry: 'x', scopes: 'repository:acme/web:pull' }],
    ['empty scopes', { registry: 'x', scopes: [] }],
    ['more than 20 scopes', { registry: 'x', scopes: Array.from({ length: 21 }, (_, i) => `repository:acme/r${i}:pull`) }],
    ['an unknown field', { registry: 'x', scopes: ['repository:acme/web:pull'], ttl: 99999 }],
    ['registry not a string', { registry: 5, scopes: ['repository:acme/web:pull'] }],
  ])('%s', async (_name, body) => {
    await expectProblem(await tokens(body), 400, 'bad-request');
  });

  it('a lone surrogate escape in a string is 400, and nothing of it is kept for the audit search to choke on', async () => {
    for (const text of ['{"registry":"\\ud800","scopes":["repository:acme/web:pull"]}', '{"registry":"x","scopes":["repository:acme/web:pull\\udc00"]}', '{"\\ud800":1}']) {
      const problem = await expectProblem(await tokens(text), 400, 'bad-request');
      expect(problem.detail).toMatch(/not valid Unicode/);
    }
    const search = await fetch(`${h.sandbox.broker.url}/api/v1/admin/issuances?limit=1000`, { headers: { Authorization: `Bearer ${await h.tokenFor(h.admin)}` } });
    expect(search.status).toBe(200);
    // What a strict JSON reader (jq) refuses: an escaped surrogate half without its partner.
    expect(await search.text()).not.toMatch(/\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}/i);
  });

  it('scopes given as one string: the detail says a list is expected', async () => {
    const problem = await expectProblem(await tokens({ registry: 'x', scopes: 'repository:acme/web:pull' }), 400, 'bad-request');
    expect(problem.detail).toMatch(/^scopes: .*array/i);
  });

  it('unknown registry', async () => {
    const problem = await expectProblem(await tokens({ registry: 'quay.io', scopes: ['repository:acme/web:pull'] }), 404, 'unknown-registry');
    expect(problem.detail).toContain('quay.io');
  });

  it('a body over 16 KiB', async () => {
    await expectProblem(await tokens({ registry: registry(), scopes: ['repository:acme/web:pull'], pad: 'x'.repeat(17 * 1024) }), 413, 'payload-too-large');
  });

  it('a chunked body over 16 KiB (no Content-Length)', async () => {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`${h.sandbox.broker.url}/api/v1/tokens`, { method: 'POST', headers: { Authorization: `Bearer ${bearer}`, 'Transfer-Encoding': 'chunked' } }, (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      for (let i = 0; i < 20; i++) req.write('x'.repeat(1024));
      req.end();
    });
    expect(status).toBe(413);
    expect(JSON.parse(body)).toMatchObject({ status: 413 });
  });
});

describe('scope grammar', () => {
  it.each([
    ['uppercase name', 'repository:Acme:pull'],
    ['a fourth part', 'repository:a:pull:push'],
    ['dot-dot segment', 'repository:acme/../web:pull'],
    ['empty segment', 'repository:acme//web:pull'],
    ['leading slash', 'repository:/acme/web:pull'],
    ['trailing slash', 'repository:acme/web/:pull'],
    ['a 300-character name', `repository:${'a'.repeat(300)}:pull`],
    ['unknown action', 'repository:acme/web:fly'],
    ['wildcard action', 'repository:acme/web:*'],
    ['no actions', 'repository:acme/web:'],
    ['another resource type', 'registry:catalog:*'],
    ['a glob in the name', 'repository:acme/*:pull'],
    ['a host in the name', 'repository:docker.io:5000/acme/web:pull'],
    ['whitespace', 'repository:acme/web :pull'],
    ['not a scope at all', 'pull everything please'],
  ])('%s is 400', async (_name, scope) => {
    const problem = await expectProblem(await tokens({ registry: registry(), scopes: [scope] }), 400, 'bad-request');
    expect(problem.errors).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'scopes.0' })]));
  });

  it('a 255-character name is allowed by the grammar', async () => {
    const response = await tokens({ registry: registry(), scopes: [`repository:acme/${'a'.repeat(250)}:pull`] });
    expect(response.status).toBe(200);
  });

  it('duplicate scopes for one repository merge into one', async () => {
    const response = await tokens({ registry: registry(), scopes: ['repository:acme/web:push', 'repository:acme/web:pull', 'repository:acme/web:pull'] });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { scopes: string[] }).scopes).toEqual(['repository:acme/web:pull,push']);
  });

  it('all-or-nothing: one ungranted action denies the whole request and names it', async () => {
    const problem = await expectProblem(
      await tokens({ registry: registry(), scopes: ['repository:acme/web:pull', 'repository:other/web:pull', 'repository:acme/api:delete'] }),
      403,
      'not-granted',
    );
    expect(problem.detail).toContain('repository:other/web:pull');
    expect(problem.detail).toContain('repository:acme/api:delete');
    expect(problem.detail).not.toContain('repository:acme/web:pull');
  });
});

describe('routing', () => {
  it('a wrong method is 405 with Allow', async () => {
    const response = await fetch(`${h.sandbox.broker.url}/api/v1/tokens`, { headers: { Authorization: `Bearer ${bearer}` } });
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('POST');
  });

  it('an unknown path is 404 problem+json', async () => {
    const response = await fetch(`${h.sandbox.broker.url}/api/v2/tokens`);
    expect(response.status).toBe(404);
    await problemOf(response);
  });

  it('a path with dot segments is routed as its normalised URL, case-insensitively, query aside', async () => {
    const { port } = new URL(h.sandbox.broker.url);
    const status = (path: string) =>
      new Promise<number | undefined>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
          res.resume();
          resolve(res.statusCode);
        });
        req.on('error', reject);
        req.end();
      });
    // GET on the tokens route: 405 means the path reached it.
    expect(await status('/api/v1/admin/../tokens')).toBe(405);
    expect(await status('/api/V1/Tokens?x=1')).toBe(405);
    expect(await status('/api/v1/%74okens')).toBe(404);
  });

  it('the process is still serving after all of the above', async () => {
    const response = await tokens({ registry: registry(), scopes: ['repository:acme/web:pull'] });
    expect(response.status).toBe(200);
  });
});
