import { expect, it } from 'vitest';
import { readTokenRequest } from '../../src/issuance/tokenRequest.js';

/** Bodies are validated once per text and the result shared: what is shared must not be changeable, and what differs must be validated anew. */
const body = (value: unknown) => async () => JSON.stringify(value);

it('answers a repeated body with the same validated request', async () => {
  const first = await readTokenRequest(body({ registry: 'docker.io', scopes: ['repository:acme/web:push,pull'] }));
  const again = await readTokenRequest(body({ registry: 'docker.io', scopes: ['repository:acme/web:push,pull'] }));
  expect(first).toEqual({ ok: true, request: { registry: 'docker.io', scopes: [{ repository: 'acme/web', actions: ['pull', 'push'] }], form: 'token' }, asked: { registry: 'docker.io', scopes: ['repository:acme/web:push,pull'] } });
  expect(again).toEqual(first);
});

it('shares nothing a request could change for the next one', async () => {
  const read = await readTokenRequest(body({ registry: 'ghcr.io', scopes: ['repository:acme/api:pull'] }));
  if (!read.ok) throw new Error('expected a valid body');
  expect(() => read.request.scopes.push({ repository: 'other/repo', actions: ['push'] })).toThrow(TypeError);
  expect(() => read.request.scopes[0]!.actions.push('delete')).toThrow(TypeError);
  expect(() => read.asked.scopes.push('repository:other/repo:push')).toThrow(TypeError);
  expect(() => Object.assign(read.request, { registry: 'evil.example' })).toThrow(TypeError);
  const again = await readTokenRequest(body({ registry: 'ghcr.io', scopes: ['repository:acme/api:pull'] }));
  expect(again.ok && again.request).toEqual({ registry: 'ghcr.io', scopes: [{ repository: 'acme/api', actions: ['pull'] }], form: 'token' });
});

it('validates every body that differs, and never keeps a refused one', async () => {
  expect((await readTokenRequest(body({ registry: 'docker.io', scopes: ['repository:acme/web:pull'] }))).ok).toBe(true);
  const bad = await readTokenRequest(body({ registry: 'docker.io', scopes: ['repository:acme/web:pull'], ttlSeconds: 600 }));
  expect(bad).toMatchObject({ ok: false, problem: { code: 'bad-request' }, asked: { registry: 'docker.io' } });
  const unknownField = body({ registry: 'docker.io', scopes: ['repository:acme/web:pull'], extra: 1 });
  expect((await readTokenRequest(unknownField)).ok).toBe(false);
  expect((await readTokenRequest(unknownField)).ok).toBe(false);
  expect(await readTokenRequest(async () => '{"registry":')).toMatchObject({ ok: false, problem: { code: 'bad-request' } });
});
