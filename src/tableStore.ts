import type { TableClient } from '@azure/data-tables';
import { azureStatus, BrokerError } from './errors.js';
import { errorSummary, type Logger } from './logger.js';

/** What every table-backed store does the same way: create its table on first use, and fail as "down". */

/** Existence checks made or under way, by client: stores that share a client share its one check. */
const checks = new WeakMap<TableClient, Promise<void>>();

/**
 * Creates the table on first use, once per client (Azurite, a fresh sandbox), whichever store uses it
 * first: the warm-up's check then also covers the other stores on that table. 409 (already there) is
 * success, and so is 403: in Azure, infra creates every table and the broker's roles may not create
 * tables; if one is really missing, the first read or write says so. A failed check is made again.
 */
export function tableReady(client: TableClient): () => Promise<void> {
  return () => {
    let ready = checks.get(client);
    if (!ready) {
      ready = client.createTable().catch((error: unknown) => {
        const status = azureStatus(error);
        if (status === 409 || status === 403) return;
        checks.delete(client);
        throw error;
      });
      checks.set(client, ready);
    }
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
