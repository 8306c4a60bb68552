import { TableClient, type TableServiceClientOptions } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import type { TablesConnection } from './config.js';
import { azureStatus, BrokerError } from './errors.js';
import { errorSummary, type Logger } from './logger.js';
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

/**
 * Creates the table on first use, once per client (Azurite, a fresh sandbox). 409 (already there) is
 * success, and so is 403: in Azure, infra creates every table and the broker's roles may not create
 * tables; if one is really missing, the first read or write says so.
 */
export function tableReady(client: TableClient): () => Promise<void> {
  let ready: Promise<void> | undefined;
  return () => {
    ready ??= client.createTable().catch((error: unknown) => {
      const status = azureStatus(error);
      if (status === 409 || status === 403) return;
      ready = undefined;
      throw error;
    });
    return ready;
  };
}

/**
 * Runs a table action once the table exists. Problems (404, 409, 412 turned into answers) pass
 * through; any other failure is logged and becomes `unavailable()`: the store is down.
 */
export async function guarded<T>(ready: () => Promise<void>, action: () => Promise<T>, log: Logger, store: string, unavailable: () => Error): Promise<T> {
  try {
    await ready();
    return await action();
  } catch (error) {
    if (error instanceof BrokerError) throw error;
    log.error(`${store} request failed`, { status: azureStatus(error), error: errorSummary(error) });
    throw unavailable();
  }
}
