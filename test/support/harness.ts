import type { TableEntityResult } from '@azure/data-tables';
import { createTableClient } from '../../src/tables.js';
import { jsonLineLogger } from '../../src/logger.js';
import { ADMIN_ROLE, AUDIENCE, startSandbox, type Sandbox, type SandboxOptions } from '../../src/sandbox/sandbox.js';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';

export { ADMIN_ROLE, AUDIENCE };

export interface Harness {
  sandbox: Sandbox;
  /** Every log line the broker wrote during the test file. */
  logs: string[];
  admin: ManagedIdentity;
  tokenFor(identity: ManagedIdentity, version?: '1.0' | '2.0'): Promise<string>;
  post(path: string, body: unknown, bearer?: string, headers?: Record<string, string>): Promise<Response>;
  requestToken(identity: ManagedIdentity, scopes: string[], registry?: string): Promise<Response>;
  grant(grant: Record<string, unknown>): Promise<void>;
  auditRecords(): Promise<TableEntityResult<Record<string, unknown>>[]>;
  close(): Promise<void>;
}

export async function startHarness(options: Partial<Omit<SandboxOptions, 'log'>> = {}): Promise<Harness> {
  const logs: string[] = [];
  const sandbox = await startSandbox({ ...options, log: jsonLineLogger((line) => logs.push(line)) });
  const admin = sandbox.identity('admin', [ADMIN_ROLE]);
  const base = `${sandbox.broker.url}/api`;
  const tokenFor = (identity: ManagedIdentity, version: '1.0' | '2.0' = '1.0') =>
    sandbox.entra.mint({ identity, audience: AUDIENCE, version });
  const post = (path: string, body: unknown, bearer?: string, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(bearer ? { Authorization: `Bearer ${bearer}` } : {}), ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  return {
    sandbox,
    logs,
    admin,
    tokenFor,
    post,
    requestToken: async (identity, scopes, registry = sandbox.registry.host) =>
      post('/v1/tokens', { registry, scopes }, await tokenFor(identity)),
    grant: async (grant) => {
      const response = await post('/v1/admin/grants', { registry: sandbox.registry.host, ...grant }, await tokenFor(admin));
      if (response.status !== 201) throw new Error(logs.join('\n') + `grant ${String(grant.id)}: ${response.status} ${await response.text()}`);
    },
    auditRecords: async () => {
      const table = createTableClient(sandbox.config.tables, 'issuances', { getToken: async () => null });
      const records: TableEntityResult<Record<string, unknown>>[] = [];
      for await (const entity of table.listEntities<Record<string, unknown>>()) records.push(entity);
      return records;
    },
    close: () => sandbox.close(),
  };
}

export async function problemOf(response: Response): Promise<Record<string, unknown>> {
  if (!response.headers.get('content-type')?.startsWith('application/problem+json')) {
    throw new Error(`expected problem+json, got ${response.headers.get('content-type')} (${response.status}): ${await response.text()}`);
  }
  return (await response.json()) as Record<string, unknown>;
}
