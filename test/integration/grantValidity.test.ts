import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { advanceClock, installShiftableClock } from '../support/clock.js';
import { problemOf, startHarness, type Harness } from '../support/harness.js';

/** A grant stops working the moment its notAfter passes, and while it is disabled, over HTTP. */
installShiftableClock();
let h: Harness;
let caller: ManagedIdentity;
let admin: string;

beforeAll(async () => {
  h = await startHarness();
  caller = h.sandbox.identity('workload');
  admin = await h.tokenFor(h.admin);
});
afterAll(() => h?.close());

const ask = () => h.requestToken(caller, ['repository:acme/web:pull']);
const grant = (id: string, extra: Record<string, unknown>) => ({ id, subjects: [{ objectId: caller.objectId }], registry: h.sandbox.registry.host, repositories: ['acme/web'], actions: ['pull'], ...extra });

async function expectNotGranted(response: Response) {
  expect(response.status).toBe(403);
  const problem = await problemOf(response);
  expect(problem.type).toBe('urn:registry-broker:problem:not-granted');
  expect(problem).not.toHaveProperty('token');
}

it('a grant works until its notAfter, and not after it', async () => {
  // Registry tokens of 60 s, so that one minted 90 s before notAfter does not outlive the grant.
  h.sandbox.tokens.setLifetime(60);
  const notAfter = new Date(Date.now() + 600_000);
  notAfter.setUTCMilliseconds(0);
  await h.grant(grant('ending', { notAfter: notAfter.toISOString() }));
  expect((await ask()).status).toBe(200);
  advanceClock(notAfter.getTime() - Date.now() - 90_000);
  expect((await ask()).status).toBe(200);
  advanceClock(91_000);
  await expectNotGranted(await ask());
});

it('a disabled grant does not work; enabled again, it does', async () => {
  const created = await fetch(`${h.sandbox.broker.url}/api/v1/admin/grants`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(grant('switch', { enabled: false })),
  });
  expect(created.status).toBe(201);
  await expectNotGranted(await ask());
  const enabled = await fetch(`${h.sandbox.broker.url}/api/v1/admin/grants/switch`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json', 'If-Match': created.headers.get('etag')! },
    body: JSON.stringify({ ...grant('switch', {}), enabled: true }),
  });
  expect(enabled.status).toBe(200);
  expect((await ask()).status).toBe(200);
});
