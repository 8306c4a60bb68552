import type { Server, ServerResponse } from 'node:http';
import { TableServiceClient, type TableEntityResult } from '@azure/data-tables';
import { createTableClient } from '../../src/tables.js';
import type { BrokerConfig } from '../../src/config.js';
import { jsonLineLogger } from '../../src/logger.js';
import { routes } from '../../src/routes.js';
import { createServices } from '../../src/services.js';
import { startBrokerHost, type BrokerHost } from '../../src/sandbox/brokerHost.js';
import { ADMIN_ROLE, AUDIENCE, startSandbox, type Sandbox, type SandboxOptions } from '../../src/sandbox/sandbox.js';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { findLeaks, secretFields, type Haystack, type Secret } from './secretScan.js';

export { ADMIN_ROLE, AUDIENCE };

export interface Harness {
  sandbox: Sandbox;
  /** Every log line the broker wrote during the test file. */
  logs: string[];
  /** Every answer the broker's host sent, in order. */
  responses: { status: number; body: string }[];
  admin: ManagedIdentity;
  tokenFor(identity: ManagedIdentity, version?: '1.0' | '2.0'): Promise<string>;
  post(path: string, body: unknown, bearer?: string, headers?: Record<string, string>): Promise<Response>;
  requestToken(identity: ManagedIdentity, scopes: string[], registry?: string): Promise<Response>;
  grant(grant: Record<string, unknown>): Promise<void>;
  /** Every issuance record, one row each (the table's index rows left out). */
  auditRecords(): Promise<TableEntityResult<Record<string, unknown>>[]>;
  /**
   * Another broker instance on the same sandbox, with caches of its own (and settings changed by
   * `config`); its logs and answers are scanned with the rest, and close() closes it.
   */
  startInstance(config?: Partial<BrokerConfig>): Promise<BrokerHost>;
  /**
   * Ends the file: scans every log line, table row and problem body the harness saw for every secret
   * the sandbox knows, closes the sandbox, and throws (failing the file) if any secret leaked.
   */
  close(): Promise<void>;
}

export async function startHarness(options: Partial<Omit<SandboxOptions, 'log'>> = {}): Promise<Harness> {
  const logs: string[] = [];
  const sandbox = await startSandbox({ ...options, log: jsonLineLogger((line) => logs.push(line)) });
  const responses: { status: number; body: string }[] = [];
  recordResponses(sandbox.broker.server, responses);
  const rowsSeen = new Map<string, Record<string, unknown>>();
  const instances: BrokerHost[] = [];
  let closing: Promise<void> | undefined;
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
    responses,
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
      for await (const entity of table.listEntities<Record<string, unknown>>()) {
        // One row per record: not its index copies (`o|…`, `r|…` row keys) nor the index marker.
        if (entity.partitionKey !== 'meta' && !entity.rowKey?.includes('|')) records.push(entity);
      }
      for (const record of records) rowsSeen.set(`issuances/${record.partitionKey}/${record.rowKey}`, record);
      return records;
    },
    startInstance: async (config = {}) => {
      const log = jsonLineLogger((line) => logs.push(line));
      const instance = await startBrokerHost(routes, createServices({ ...sandbox.config, ...config }, log), log);
      recordResponses(instance.server, responses);
      instances.push(instance);
      return instance;
    },
    close: () => {
      closing ??= (async () => {
        for (const instance of instances) await instance.close();
        let leaks: string[];
        try {
          leaks = findLeaks(knownSecrets(sandbox, responses), [...logs.map((text, i) => ({ where: `log line ${i + 1}`, text })), ...problemBodies(responses), ...(await tableRows(sandbox, rowsSeen))]);
        } finally {
          await sandbox.close();
        }
        if (leaks.length > 0) throw new Error(`Secrets leaked (${leaks.length}):\n  ${leaks.slice(0, 20).join('\n  ')}`);
      })();
      return closing;
    },
  };
}

/** The host's handler answers asynchronously, so wrapping `end` first sees every body it sends. */
function recordResponses(server: Server, sink: { status: number; body: string }[]): void {
  server.prependListener('request', (_request, response: ServerResponse) => {
    const end = response.end.bind(response) as (...args: unknown[]) => ServerResponse;
    response.end = ((...args: unknown[]) => {
      const [chunk] = args;
      if (typeof chunk === 'string' || Buffer.isBuffer(chunk)) sink.push({ status: response.statusCode, body: chunk.toString() });
      return end(...args);
    }) as ServerResponse['end'];
  });
}

/** Key Vault values, the Docker Hub admin password, every managed-identity token, every token or password handed out. */
function knownSecrets(sandbox: Sandbox, responses: { status: number; body: string }[]): Secret[] {
  const secrets: Secret[] = [
    { what: 'the stored registry password', value: sandbox.registryPassword },
    ...(sandbox.dockerHub ? [{ what: 'the Docker Hub admin password', value: sandbox.dockerHub.adminPassword }] : []),
  ];
  for (const value of sandbox.keyVault.allValues()) {
    for (const [field, secret] of secretFields(value) ?? [['value', value]]) secrets.push({ what: `a Key Vault secret's ${field}`, value: secret });
  }
  for (const token of sandbox.entra.mintedTokens()) secrets.push({ what: 'a managed-identity token', value: token });
  for (const { status, body } of responses) {
    if (status < 300) for (const [field, secret] of secretFields(body) ?? []) secrets.push({ what: `a credential the broker handed out (${field})`, value: secret });
  }
  return secrets;
}

function problemBodies(responses: { status: number; body: string }[]): Haystack[] {
  return responses.filter(({ status }) => status >= 400).map(({ status, body }, i) => ({ where: `problem body ${i + 1} (HTTP ${status})`, text: body }));
}

/** Every row of every table; if Table Storage is gone by now (fault tests), the rows read while it was up. */
async function tableRows(sandbox: Sandbox, seen: Map<string, Record<string, unknown>>): Promise<Haystack[]> {
  const rows = new Map(seen);
  try {
    if (sandbox.config.tables.kind !== 'connectionString') throw new Error('not Azurite');
    const service = TableServiceClient.fromConnectionString(sandbox.config.tables.value, { allowInsecureConnection: true, retryOptions: { maxRetries: 0 } });
    for await (const { name } of service.listTables()) {
      if (!name) continue;
      const table = createTableClient(sandbox.config.tables, name, { getToken: async () => null });
      for await (const row of table.listEntities<Record<string, unknown>>()) rows.set(`${name}/${row.partitionKey}/${row.rowKey}`, row);
    }
  } catch {
    // Azurite was closed by the test: scan what was read before.
  }
  return [...rows].map(([where, row]) => ({ where: `table row ${where}`, text: JSON.stringify(row) }));
}

export async function problemOf(response: Response): Promise<Record<string, unknown>> {
  if (!response.headers.get('content-type')?.startsWith('application/problem+json')) {
    throw new Error(`expected problem+json, got ${response.headers.get('content-type')} (${response.status}): ${await response.text()}`);
  }
  return (await response.json()) as Record<string, unknown>;
}
