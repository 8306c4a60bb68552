import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { connect } from 'node:net';
import { freePort } from './localServer.js';

/** Azurite's table service, in memory, started directly (not through npx, whose child would outlive it). */
export interface Azurite {
  port: number;
  connectionString: string;
  close(): Promise<void>;
}

/** Azurite's published development account; not a secret. */
const DEV_ACCOUNT = 'devstoreaccount1';
const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.end();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export function tablesConnectionString(port: number): string {
  return `DefaultEndpointsProtocol=http;AccountName=${DEV_ACCOUNT};AccountKey=${DEV_KEY};TableEndpoint=http://127.0.0.1:${port}/${DEV_ACCOUNT};`;
}

export async function startAzurite(options: { port?: number } = {}): Promise<Azurite> {
  const port = options.port ?? (await freePort());
  const main = join(dirname(createRequire(import.meta.url).resolve('azurite/package.json')), 'dist/src/table/main.js');
  const child = spawn(process.execPath, [main, '--inMemoryPersistence', '--tableHost', '127.0.0.1', '--tablePort', String(port), '--disableTelemetry', '--silent'], {
    stdio: 'ignore',
  });
  const until = Date.now() + 15_000;
  while (!(await portOpen(port))) {
    if (child.exitCode !== null || Date.now() > until) {
      child.kill('SIGKILL');
      throw new Error('Azurite did not start');
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    connectionString: tablesConnectionString(port),
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
