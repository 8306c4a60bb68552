import type { PipelinePolicy } from '@azure/core-rest-pipeline';
import { TableClient, type TableServiceClientOptions } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import type { TablesConnection } from './config.js';
import { isLoopbackUrl } from './urlPolicy.js';

/** Bounded retries: a request waiting on a dead table must fail fast enough to answer 503. */
const CLIENT_OPTIONS: TableServiceClientOptions = {
  retryOptions: { maxRetries: 2, retryDelayInMs: 200, maxRetryDelayInMs: 1000 },
};

/**
 * No single Table request waits longer than this, whoever sends it: one that names its own
 * AbortSignal may end sooner. A hung table otherwise holds a call that has no deadline of its own
 * (a search page, a listing) until the socket gives up, minutes later. The SDK does not retry a
 * request that timed out, so this is also the longest such a call waits. Well above what Azure Tables
 * takes for a page; Azurite's whole-table scans at 10⁶ records can take longer (docs/design-decisions.md).
 */
export const TABLE_REQUEST_TIMEOUT_MS = 4_000;

function bounded(client: TableClient, timeoutMs: number): TableClient {
  const requestTimeout: PipelinePolicy = {
    name: 'tableRequestTimeout',
    sendRequest: (request, next) => {
      if (!request.timeout || request.timeout > timeoutMs) request.timeout = timeoutMs;
      return next(request);
    },
  };
  client.pipeline.addPolicy(requestTimeout);
  return client;
}

function isLoopbackEndpoint(connectionString: string): boolean {
  const endpoint = connectionString.split(';').find((part) => part.trim().toLowerCase().startsWith('tableendpoint='));
  try {
    return endpoint !== undefined && isLoopbackUrl(new URL(endpoint.slice(endpoint.indexOf('=') + 1).trim()));
  } catch {
    return false;
  }
}

/** `requestTimeoutMs`: only the audit-search benchmark lifts it, to load and scan 10⁶ records in Azurite. */
export function createTableClient(connection: TablesConnection, table: string, credential: TokenCredential, requestTimeoutMs = TABLE_REQUEST_TIMEOUT_MS): TableClient {
  if (connection.kind === 'connectionString') {
    // Azurite speaks plain http on loopback; anything else must be https.
    const local = /UseDevelopmentStorage=true/i.test(connection.value) || isLoopbackEndpoint(connection.value);
    return bounded(TableClient.fromConnectionString(connection.value, table, { ...CLIENT_OPTIONS, allowInsecureConnection: local }), requestTimeoutMs);
  }
  return bounded(new TableClient(connection.url, table, credential, CLIENT_OPTIONS), requestTimeoutMs);
}
