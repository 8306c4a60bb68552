import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from './ipc.js';

/** The floor: node:http reading a small JSON POST and answering JSON, nothing else. */
const server = createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { registry?: string };
    response.writeHead(200, { 'Content-Type': 'application/json' });
    response.end(JSON.stringify({ registry: body.registry, token: 'bare' }));
  });
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
serve({}, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
