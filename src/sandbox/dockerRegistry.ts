import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './localServer.js';
import type { RegistryTokenServer } from './registryTokenServer.js';

/** Debian's docker-registry (CNCF distribution 2.8), trusting a token server's signing certificate. */
export const DOCKER_REGISTRY_BINARY = '/usr/bin/docker-registry';

export interface DockerRegistry {
  url: string;
  host: string;
  close(): Promise<void>;
}

export function dockerRegistryAvailable(): boolean {
  return existsSync(DOCKER_REGISTRY_BINARY);
}

async function waitForChallenge(url: string, child: ChildProcess): Promise<void> {
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}`);
    try {
      const response = await fetch(`${url}/v2/`);
      await response.body?.cancel();
      if (response.status === 401) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('docker-registry did not start within 10 s');
}

export interface DockerRegistryOptions {
  port?: number;
  /** The registry's auth service and realm; default: the token server's distribution endpoint. */
  service?: string;
  realm?: string;
}

export async function startDockerRegistry(tokens: RegistryTokenServer, options: DockerRegistryOptions = {}): Promise<DockerRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'registry-broker-registry-'));
  const port = options.port ?? (await freePort());
  await writeFile(join(dir, 'root.pem'), tokens.rootCertificatePem);
  await writeFile(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      'auth:',
      '  token:',
      `    realm: ${options.realm ?? tokens.realm}`,
      `    service: ${options.service ?? tokens.service}`,
      `    issuer: ${tokens.issuer}`,
      `    rootcertbundle: ${join(dir, 'root.pem')}`,
      '',
    ].join('\n'),
  );
  const child = spawn(DOCKER_REGISTRY_BINARY, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForChallenge(url, child);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${(error as Error).message}\n${stderr}`);
  }
  return {
    url,
    host: `127.0.0.1:${port}`,
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
