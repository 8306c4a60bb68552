import { createServer, request as forward } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tablesConnectionString } from '../../src/sandbox/azurite.js';

/**
 * An HTTP proxy in front of Azurite that can cut chosen tables off (every request for them has its
 * connection reset), the way a partial Table Storage outage looks to the SDK. A broker instance
 * built on `connectionString` reaches the same tables as everyone else, through the proxy.
 */
export interface TableProxy {
  connectionString: string;
  /** Tables whose requests fail from now on (`all`: every request, batches and table creation too); [] heals. */
  cutOff(tables: string[] | 'all'): void;
  close(): Promise<void>;
}

/** `/devstoreaccount1/grants(PartitionKey='grant')` → `grants`; `/devstoreaccount1/Tables` → `Tables`. */
function tableOf(path: string): string {
  return (path.split('?')[0]!.split('/')[2] ?? '').replace(/\(.*$/, '');
}

export async function startTableProxy(azuritePort: number): Promise<TableProxy> {
  let cut: Set<string> | 'all' = new Set<string>();
  const server = createServer((incoming, outgoing) => {
    if (cut === 'all' || cut.has(tableOf(incoming.url ?? '/'))) {
      incoming.socket.destroy();
      return;
    }
    const upstream = forward({ host: '127.0.0.1', port: azuritePort, method: incoming.method, path: incoming.url, headers: incoming.headers }, (answer) => {
      outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(outgoing);
    });
    upstream.on('error', () => outgoing.destroy());
    incoming.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    connectionString: tablesConnectionString((server.address() as AddressInfo).port),
    cutOff: (tables) => {
      cut = tables === 'all' ? tables : new Set(tables);
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
