import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A pass-through in front of the sandbox broker for CLI tests: it records what the CLI asked and
 * what the broker answered, and can make a change of its own just before it forwards a request —
 * the way a second operator racing the CLI would — so conflicts are exercised deterministically
 * against the broker's real ETag and 409 handling.
 */
export interface Exchange {
  method: string;
  path: string;
  status: number;
  body: unknown;
}

export interface BrokerProxy {
  /** The API base to give the CLI as --broker. */
  url: string;
  exchanges: Exchange[];
  /** Runs once, before the first request it returns true for is forwarded. */
  interpose(when: (method: string, path: string) => boolean, action: () => Promise<void>): void;
  close(): Promise<void>;
}

async function bodyOf(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const FORWARDED = ['authorization', 'content-type', 'if-match'];

export async function startBrokerProxy(target: string): Promise<BrokerProxy> {
  const exchanges: Exchange[] = [];
  let pending: { when: (method: string, path: string) => boolean; action: () => Promise<void> } | undefined;
  const server = createServer(async (request, response) => {
    const method = request.method ?? 'GET';
    const path = request.url ?? '/';
    const body = await bodyOf(request);
    if (pending?.when(method, path)) {
      const { action } = pending;
      pending = undefined;
      await action();
    }
    const headers = Object.fromEntries(FORWARDED.flatMap((name) => (request.headers[name] ? [[name, String(request.headers[name])]] : [])));
    const answer = await fetch(`${target}${path}`, { method, headers, ...(body.length ? { body } : {}) });
    const text = await answer.text();
    exchanges.push({ method, path, status: answer.status, body: text ? (JSON.parse(text) as unknown) : undefined });
    const back: Record<string, string> = {};
    for (const name of ['content-type', 'etag', 'location']) {
      const value = answer.headers.get(name);
      if (value) back[name] = value;
    }
    response.writeHead(answer.status, back).end(text);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    exchanges,
    interpose: (when, action) => {
      pending = { when, action };
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
