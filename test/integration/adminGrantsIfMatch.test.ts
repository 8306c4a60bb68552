import { afterAll, beforeAll, expect, it } from 'vitest';
import { problemOf, startHarness, type Harness } from '../support/harness.js';

/** Issue 9 L1: `If-Match: *` (or anything but one quoted ETag) must not overwrite a grant unconditionally. */
let h: Harness;
let admin: string;
let url: string;
const grant = (description: string) => ({ id: 'guarded', description, subjects: [{ objectId: '11111111-1111-1111-1111-111111111111' }], repositories: ['acme/web'], actions: ['pull'] });

beforeAll(async () => {
  h = await startHarness();
  admin = await h.tokenFor(h.admin);
  await h.grant(grant('original'));
  url = `${h.sandbox.broker.url}/api/v1/admin/grants/guarded`;
});
afterAll(() => h?.close());

const send = (method: string, ifMatch: string, body?: unknown) =>
  fetch(url, {
    method,
    headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json', 'If-Match': ifMatch },
    ...(body ? { body: JSON.stringify({ ...(body as object), registry: h.sandbox.registry.host }) } : {}),
  });

it.each(['*', 'W/"a", W/"b"', 'no-quotes'])('refuses If-Match %j with 428 on PUT and DELETE, and changes nothing', async (value) => {
  for (const response of [await send('PUT', value, grant('overwritten')), await send('DELETE', value)]) {
    expect(response.status).toBe(428);
    expect(await problemOf(response)).toMatchObject({ type: 'urn:registry-broker:problem:precondition-required' });
  }
  const current = await fetch(url, { headers: { Authorization: `Bearer ${admin}` } });
  expect(((await current.json()) as { description: string }).description).toBe('original');
});

it('accepts the quoted ETag from GET', async () => {
  const current = await fetch(url, { headers: { Authorization: `Bearer ${admin}` } });
  const response = await send('PUT', current.headers.get('etag')!, grant('updated'));
  expect(response.status).toBe(200);
});
