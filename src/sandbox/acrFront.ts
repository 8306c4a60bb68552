import { createServer, request as httpRequest } from 'node:http';
import type { DockerRegistry } from './dockerRegistry.js';

/**
 * One host serving both ACR's OAuth2 endpoints and the registry API, as an ACR login server does:
 * `/oauth2/*` goes to the token server, everything else to docker-registry. The Host header passes
 * through, so the registry writes upload URLs for this front host.
 */
export async function startAcrFront(port: number, tokenServerUrl: string, registry: DockerRegistry): Promise<DockerRegistry> {
  const token = new URL(tokenServerUrl);
  const backend = new URL(registry.url);
  const server = createServer((incoming, outgoing) => {
    const target = incoming.url?.startsWith('/oauth2/') ? token : backend;
    const forward = httpRequest(
      { host: target.hostname, port: target.port, method: incoming.method, path: incoming.url, headers: incoming.headers },
      (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      },
    );
    forward.on('error', () => outgoing.destroy());
    incoming.pipe(forward);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await registry.close();
    },
  };
}
