import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP proxy on loopback that can hang like a dependency whose process is frozen: while stalled it
 * still accepts connections (as the kernel would) but moves no byte in either direction, on new
 * and open connections alike. `resume()` lets everything held flow again.
 */
export interface StallingProxy {
  port: number;
  /** `127.0.0.1:<port>`, to put in a URL in place of the dependency's host. */
  host: string;
  stall(): void;
  resume(): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
  toUpstream: Buffer[];
  toClient: Buffer[];
}

/** `to`: the dependency's host and port, or its base URL. */
export async function startStallingProxy(to: { host: string; port: number } | string): Promise<StallingProxy> {
  const target = typeof to === 'string' ? { host: new URL(to).hostname, port: Number(new URL(to).port) } : to;
  let stalled = false;
  const pairs = new Set<Pair>();

  const flush = (pair: Pair) => {
    if (stalled || !pair.upstream) return;
    for (const chunk of pair.toUpstream.splice(0)) pair.upstream.write(chunk);
    for (const chunk of pair.toClient.splice(0)) pair.client.write(chunk);
  };
  const open = (pair: Pair) => {
    if (pair.upstream || pair.client.destroyed) return;
    const upstream = connect(target.port, target.host);
    pair.upstream = upstream;
    upstream.on('data', (chunk: Buffer) => {
      pair.toClient.push(chunk);
      flush(pair);
    });
    upstream.on('error', () => pair.client.destroy());
    upstream.on('close', () => pair.client.destroy());
    flush(pair);
  };

  const server = createServer((client) => {
    const pair: Pair = { client, upstream: undefined, toUpstream: [], toClient: [] };
    pairs.add(pair);
    client.on('data', (chunk: Buffer) => {
      pair.toUpstream.push(chunk);
      flush(pair);
    });
    client.on('error', () => undefined);
    client.on('close', () => {
      pair.upstream?.destroy();
      pairs.delete(pair);
    });
    if (!stalled) open(pair);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    host: `127.0.0.1:${port}`,
    stall: () => {
      stalled = true;
    },
    resume: () => {
      stalled = false;
      for (const pair of pairs) {
        open(pair);
        flush(pair);
      }
    },
    close: () =>
      new Promise((resolve) => {
        for (const pair of pairs) {
          pair.client.destroy();
          pair.upstream?.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
