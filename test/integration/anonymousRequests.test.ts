import { base64url } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ISSUANCE_SHARDS } from '../../src/audit/partitioning.js';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { AUDIENCE, problemOf, startHarness, type Harness } from '../support/harness.js';

/**
 * Issue 9 H2: requests that fail authentication cost no durable row each, are throttled per client
 * address, and never get in the way of valid callers from the same address (ACR Tasks and container
 * groups of many tenants share outbound addresses).
 */
const ANONYMOUS_RATE = 50;
let h: Harness;
let caller: ManagedIdentity;

beforeAll(async () => {
  h = await startHarness({ env: { ANONYMOUS_RATE_PER_MINUTE: String(ANONYMOUS_RATE) } });
  caller = h.sandbox.identity('granted');
  await h.grant({ id: 'pull-web', subjects: [{ objectId: caller.objectId }], repositories: ['acme/web'], actions: ['pull'] });
  expect((await h.requestToken(caller, ['repository:acme/web:pull'])).status).toBe(200);
});
afterAll(() => h?.close());

const url = () => `${h.sandbox.broker.url}/api/v1/tokens`;
const body = () => JSON.stringify({ registry: h.sandbox.registry.host, scopes: ['repository:acme/web:pull'] });
const part = (value: unknown) => base64url.encode(JSON.stringify(value));

/** Unauthenticated noise of every cheap kind: no header, junk, a JWT shape with nonsense, an expired token. */
async function junk(i: number, expired: string): Promise<Response> {
  const kinds: (string | undefined)[] = [
    undefined,
    'Bearer junk',
    `Bearer ${part({ alg: 'RS256', kid: 'x' })}.${part({ iss: 'https://evil.example/' })}.c2ln`,
    `Bearer ${expired}`,
  ];
  const authorization = kinds[i % kinds.length];
  return fetch(url(), { method: 'POST', headers: authorization ? { Authorization: authorization } : {}, body: body() });
}

describe('requests that fail authentication', () => {
  it('are refused before any key is fetched: junk and expired tokens cost no signature work', async () => {
    const expired = await h.sandbox.entra.mint({ identity: caller, audience: AUDIENCE, lifetimeSeconds: 1, claims: { exp: Math.floor(Date.now() / 1000) - 3600 } });
    const before = h.sandbox.entra.jwksRequests();
    for (let i = 0; i < 8; i++) expect((await junk(i, expired)).status).toBe(401);
    expect(h.sandbox.entra.jwksRequests()).toBe(before);
  });

  it('2,000 of them write at most 20 rows, are throttled with 429 past the allowance, and a valid caller from the same address gets 200 throughout', async () => {
    const expired = await h.sandbox.entra.mint({ identity: caller, audience: AUDIENCE, claims: { exp: Math.floor(Date.now() / 1000) - 3600 } });
    const statuses = new Map<number, number>();
    const valid: number[] = [];
    let retryAfter: string | null = null;
    for (let batch = 0; batch < 40; batch++) {
      const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => junk(batch * 50 + i, expired)));
      for (const answer of answers) {
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        if (answer.status === 429) retryAfter ??= answer.headers.get('retry-after');
        await answer.body?.cancel();
      }
      if (batch % 8 === 0) valid.push((await h.requestToken(caller, ['repository:acme/web:pull'])).status);
    }
    valid.push((await h.requestToken(caller, ['repository:acme/web:pull'])).status);

    expect([...statuses.keys()].sort()).toEqual([401, 429]);
    expect(statuses.get(401)).toBeLessThanOrEqual(ANONYMOUS_RATE + 5);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    expect(valid.every((status) => status === 200)).toBe(true);

    await h.sandbox.services.failedAuthentications.flush({ all: true });
    // Every unauthenticated request of this file so far: the 8 above and these 2,000.
    const rows = await h.auditRecords();
    const anonymousRows = rows.filter((row) => row.objectId === undefined);
    expect(anonymousRows.length).toBeGreaterThan(0);
    expect(anonymousRows.length).toBeLessThanOrEqual(20);
    expect(anonymousRows.every((row) => row.requestId === 'aggregate' && row.clientIp === '127.0.0.1')).toBe(true);
    // Refusals, so in the refused lane: the upper half of an hour's shards.
    expect(anonymousRows.every((row) => Number(String(row.partitionKey).split('-')[1]) >= ISSUANCE_SHARDS / 2)).toBe(true);
    const counted = anonymousRows.reduce((sum, row) => sum + Number(row.count), 0);
    expect(counted).toBe(2008);
    expect(anonymousRows.some((row) => row.status === 429 && row.reason === 'anonymous-rate-limited')).toBe(true);
    // The valid caller's requests (these and the one in beforeAll) kept their own rows.
    expect(rows.filter((row) => row.objectId === caller.objectId && row.outcome === 'issued')).toHaveLength(valid.length + 1);
  });

  it('a throttled address is told why, and a valid token from it is still answered', async () => {
    // The bucket refills one request every 60/ANONYMOUS_RATE s, so after the previous test's bookkeeping
    // the first few may be answered 401 again; the allowance is spent long before this loop ends.
    let response = await fetch(url(), { method: 'POST', body: body() });
    for (let i = 0; i < ANONYMOUS_RATE && response.status === 401; i++) {
      await response.body?.cancel();
      response = await fetch(url(), { method: 'POST', body: body() });
    }
    expect(response.status).toBe(429);
    expect(await problemOf(response)).toMatchObject({ type: 'urn:registry-broker:problem:anonymous-rate-limited', status: 429 });
    expect((await h.requestToken(caller, ['repository:acme/web:pull'])).status).toBe(200);
  });

  it('the admin issuance search shows the aggregates with their counts', async () => {
    await h.sandbox.services.failedAuthentications.flush({ all: true });
    const admin = await h.tokenFor(h.admin);
    const response = await fetch(`${h.sandbox.broker.url}/api/v1/admin/issuances?outcome=denied&limit=1000`, { headers: { Authorization: `Bearer ${admin}` } });
    expect(response.status).toBe(200);
    const { issuances } = (await response.json()) as { issuances: { requestId: string; count?: number; reason: string }[] };
    const aggregates = issuances.filter((record) => record.requestId === 'aggregate');
    expect(aggregates.length).toBeGreaterThan(0);
    expect(aggregates.every((record) => typeof record.count === 'number' && record.count > 0)).toBe(true);
    expect(aggregates.map((record) => record.reason)).toContain('invalid-token:missing');
  });
});

describe('audit transactions', () => {
  it('an issued record never shares a partition, so never a transaction, with denials written at the same moment', async () => {
    const stranger = h.sandbox.identity('stranger');
    const [issued, ...denied] = await Promise.all([
      h.requestToken(caller, ['repository:acme/web:pull']),
      ...Array.from({ length: 20 }, () => h.requestToken(stranger, ['repository:acme/web:pull'])),
    ]);
    expect(issued.status).toBe(200);
    expect(denied.every((answer) => answer.status === 403)).toBe(true);
    const id = ((await issued.json()) as { issuanceId: string }).issuanceId;
    const rows = await h.auditRecords();
    const issuedRow = rows.find((row) => row.issuanceId === id)!;
    const shard = (key: unknown) => Number(String(key).split('-')[1]);
    const deniedShards = new Set(rows.filter((row) => row.objectId === stranger.objectId).map((row) => shard(row.partitionKey)));
    const issuedShards = new Set(rows.filter((row) => row.outcome === 'issued').map((row) => shard(row.partitionKey)));
    expect(issuedShards.has(shard(issuedRow.partitionKey))).toBe(true);
    for (const s of deniedShards) expect(issuedShards.has(s)).toBe(false);
  });
});
