import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { startStallingProxy, type StallingProxy } from '../test/support/stallingProxy.js';
import { GrantStore } from '../src/grants/store.js';
import { jsonLineLogger } from '../src/logger.js';
import { startAzurite, tablesConnectionString } from '../src/sandbox/azurite.js';
import { TABLES } from '../src/services.js';
import { createTableClient } from '../src/tables.js';
import { AUDIENCE, startSandbox } from '../src/sandbox/sandbox.js';
import { serve } from './ipc.js';

/**
 * The benchmark's stand-ins process: the sandbox's Entra ID, Key Vault, token server and registry
 * (Azurite in a process of its own), each dependency behind a stalling proxy so the hung-dependency
 * figures can freeze one. It hands the parent the broker's settings and, before each run, a fresh
 * Azurite holding that run's grants.
 */
export type Dependency = 'tables' | 'key-vault' | 'entra-metadata' | 'registry';

export interface StandIns {
  env: Record<string, string>;
  registry: string;
}

/** The bench broker's registry deadline: inside the 5 s every request must answer in. */
const REGISTRY_TIMEOUT_SECONDS = 3;

const sandbox = await startSandbox({
  log: jsonLineLogger(() => undefined),
  registryTimeoutSeconds: REGISTRY_TIMEOUT_SECONDS,
});
const proxies: Record<Dependency, StallingProxy> = {
  tables: await startStallingProxy({ host: '127.0.0.1', port: sandbox.azurite.port }),
  'key-vault': await startStallingProxy(sandbox.keyVault.url),
  'entra-metadata': await startStallingProxy(sandbox.entra.url),
  registry: await startStallingProxy(sandbox.tokens.url),
};

/**
 * @azure/identity refuses an http AZURE_AUTHORITY_HOST, and the Functions entry reads that one setting
 * for both, so the authority is served over TLS with a throw-away certificate the broker trusts
 * through NODE_EXTRA_CA_CERTS. Both of its sockets send at once (no Nagle): otherwise a response
 * written in two pieces waits on the client's delayed ACK, some 40 ms that Entra itself never adds,
 * on every first request of a cold start.
 */
const certificates = mkdtempSync(join(tmpdir(), 'bench-tls-'));
execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  '-keyout', join(certificates, 'key.pem'), '-out', join(certificates, 'cert.pem')], { stdio: 'ignore' });
const authority = createTlsServer({ noDelay: true, key: readFileSync(join(certificates, 'key.pem')), cert: readFileSync(join(certificates, 'cert.pem')) }, (socket) => {
  const upstream = connect({ port: proxies['entra-metadata'].port, host: '127.0.0.1', noDelay: true });
  socket.pipe(upstream).pipe(socket);
  socket.on('error', () => upstream.destroy());
  upstream.on('error', () => socket.destroy());
});
await new Promise<void>((resolve) => authority.listen(0, '127.0.0.1', resolve));
const authorityPort = (authority.address() as { port: number }).port;

const caller = sandbox.identity('bench');
const [entry] = JSON.parse(sandbox.env.REGISTRIES!) as Record<string, unknown>[];
const env: Record<string, string> = {
  ...sandbox.env,
  AZURE_AUTHORITY_HOST: `https://127.0.0.1:${authorityPort}`,
  NODE_EXTRA_CA_CERTS: join(certificates, 'cert.pem'),
  KEY_VAULT_URL: `http://${proxies['key-vault'].host}`,
  TABLES_CONNECTION_STRING: tablesConnectionString(proxies.tables.port),
  // The registry is reached only through its token realm once the pool holds a token: pin the realm behind the proxy.
  REGISTRIES: JSON.stringify([{ ...entry, realm: `http://${proxies.registry.host}/token`, service: sandbox.tokens.service }]),
  CALLER_RATE_PER_MINUTE: '1000000',
  IDENTITY_ENDPOINT: process.env.IDENTITY_ENDPOINT!,
  IDENTITY_HEADER: process.env.IDENTITY_HEADER!,
};

/**
 * Azurite (in memory) gets slower as it holds more: the 10-grant run leaves tens of thousands of
 * audit rows that would be charged to the run after it, even once their table is dropped. Each run
 * therefore starts on a fresh Azurite (same port, behind the same proxy) with exactly its grants.
 */
let azurite = sandbox.azurite;
async function fresh({ grants }: Record<string, unknown>): Promise<void> {
  await azurite.close();
  azurite = await startAzurite({ port: sandbox.azurite.port });
  const store = new GrantStore(createTableClient(sandbox.config.tables, TABLES.grants, { getToken: async () => null }), jsonLineLogger(() => undefined));
  await store.create({ id: 'bench', subjects: [{ objectId: caller.objectId }], registry: sandbox.registry.host, repositories: ['bench/**'], actions: ['pull', 'push'], enabled: true });
  // Other identities' grants, each for its own team: what a large organisation's table looks like.
  let next = 1;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < Number(grants)) {
        const i = next++;
        await store.create({ id: `team-${i}`, subjects: [{ objectId: randomUUID() }], registry: sandbox.registry.host, repositories: [`team-${i}/**`], actions: ['pull', 'push'], enabled: true });
      }
    }),
  );
  // As a table is after its first day: the subject rows complete, so no measured broker writes them.
  await store.completeSubjectRows();
}

/** Azurite's own CPU time (it runs as this process's child), from /proc: clock ticks of 10 ms. */
function azuriteUsage(): { cpuMicros: number } {
  const children = readdirSync('/proc/self/task').flatMap((task) => readFileSync(`/proc/self/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean));
  const azurite = children.find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('azurite'));
  if (!azurite) throw new Error('Azurite is not a child of the stand-ins process');
  const fields = readFileSync(`/proc/${azurite}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { cpuMicros: (Number(fields[11]) + Number(fields[12])) * 10_000 };
}

serve(
  {
    fresh,
    azuriteUsage,
    mint: ({ lifetimeSeconds }) => sandbox.entra.mint({ identity: caller, audience: AUDIENCE, lifetimeSeconds: Number(lifetimeSeconds ?? 3600) }),
    stall: ({ dependency }) => proxies[dependency as Dependency].stall(),
    resume: ({ dependency }) => proxies[dependency as Dependency].resume(),
    keyVaultReads: () => sandbox.keyVault.requests(),
    jwksReads: () => sandbox.entra.jwksRequests(),
  },
  { env, registry: sandbox.registry.host } satisfies StandIns,
);

process.once('SIGTERM', () => {
  void (async () => {
    authority.close();
    for (const proxy of Object.values(proxies)) await proxy.close();
    await azurite.close();
    await sandbox.close();
    process.exit(0);
  })();
});
