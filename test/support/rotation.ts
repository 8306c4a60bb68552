import type { Harness } from './harness.js';

/** The rotation engine's clock, moved forward by the tests instead of waiting hours. */
export function offsetClock() {
  let offset = 0;
  return {
    now: () => Date.now() + offset,
    advanceMinutes: (minutes: number) => {
      offset += minutes * 60_000;
    },
  };
}

/** Asks the registry's token server directly whether it accepts this username and password. */
export async function credentialWorks(h: Harness, username: string, password: string): Promise<boolean> {
  const url = `${h.sandbox.tokens.realm}?service=${h.sandbox.tokens.service}`;
  const response = await fetch(url, { headers: { Authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` } });
  await response.body?.cancel();
  return response.status === 200;
}

/** The stored credential as issuance sees it now (latest version). */
export function storedCredential(h: Harness) {
  const versions = h.sandbox.keyVault.versions('sandbox-registry');
  const latest = versions.at(-1)!;
  return { version: latest.version, tags: latest.tags, ...(JSON.parse(latest.value) as { username: string; password: string }) };
}

export async function rotationTrail(h: Harness, registry: string) {
  const { createTableClient } = await import('../../src/tables.js');
  const table = createTableClient(h.sandbox.config.tables, 'rotations', { getToken: async () => null });
  const rows: Record<string, unknown>[] = [];
  for await (const entity of table.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${registry}'` } })) rows.push(entity);
  return rows;
}
