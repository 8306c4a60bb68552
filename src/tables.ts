import { TableClient, type TableServiceClientOptions } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import type { TablesConnection } from './config.js';
import { isLoopbackUrl } from './urlPolicy.js';

/** Bounded retries: a request waiting on a dead table must fail fast enough to answer 503. */
const CLIENT_OPTIONS: TableServiceClientOptions = {
  retryOptions: { maxRetries: 2, retryDelayInMs: 200, maxRetryDelayInMs: 1000 },
};

function isLoopbackEndpoint(connectionString: string): boolean {
  const endpoint = connectionString.split(';').find((part) => part.trim().toLowerCase().startsWith('tableendpoint='));
  try {
    return endpoint !== undefined && isLoopbackUrl(new URL(endpoint.slice(endpoint.indexOf('=') + 1).trim()));
  } catch {
    return false;
  }
}

export function createTableClient(connection: TablesConnection, table: string, credential: TokenCredential): TableClient {
  if (connection.kind === 'connectionString') {
    // Azurite speaks plain http on loopback; anything else must be https.
    const local = /UseDevelopmentStorage=true/i.test(connection.value) || isLoopbackEndpoint(connection.value);
    return TableClient.fromConnectionString(connection.value, table, { ...CLIENT_OPTIONS, allowInsecureConnection: local });
  }
  return new TableClient(connection.url, table, credential, CLIENT_OPTIONS);
}
