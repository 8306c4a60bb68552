import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as z from 'zod';
import { ConfigError, SETTING_NAMES } from '../config.js';
import { loginCleanupTimer } from '../functions/loginCleanupTimer.js';
import { jsonLineLogger } from '../logger.js';
import { writeOciLayout } from './ociImage.js';
import { AUDIENCE, startSandbox } from './sandbox.js';

/**
 * `npm start`: the whole broker on this machine, in the spirit of `vault server -dev`. Settings given
 * in the environment replace the sandbox's own, so parts can point at real Azure resources.
 */
const PORT = Number(process.env.BROKER_PORT ?? 7071);
/** Where endpoints.json goes; tests move it so they never touch a developer's running sandbox. */
const STATE_DIR = process.env.SANDBOX_DIR ?? '.sandbox';
/** Lifetime of the registry tokens the sandbox's token server signs; short values show login credentials outliving them. */
const registryTokenSeconds = z.coerce.number().int().min(1).max(86_400).default(300);

async function main(): Promise<void> {
  const overrides = Object.fromEntries(
    SETTING_NAMES
      .filter((name) => process.env[name])
      .map((name) => [name, process.env[name]]),
  );
  const log = jsonLineLogger((line) => process.stderr.write(`${line}\n`));
  const tokenSeconds = registryTokenSeconds.safeParse(process.env.SANDBOX_REGISTRY_TOKEN_SECONDS || undefined);
  if (!tokenSeconds.success) throw new ConfigError(['SANDBOX_REGISTRY_TOKEN_SECONDS: must be whole seconds from 1 to 86400']);
  const sandbox = await startSandbox({ log, brokerPort: PORT, env: overrides, login: true, registryTokenSeconds: tokenSeconds.data });
  // The Functions host runs this timer in Azure; the sandbox host has no timers of its own.
  const cleanup = setInterval(() => void loginCleanupTimer.run(sandbox.services, log).catch(() => undefined), 30_000);
  const pusher = sandbox.identity('demo-pusher');
  const puller = sandbox.identity('demo-puller');
  // The operator: admin.md's commands work against the sandbox with its token.
  const admin = sandbox.identity('demo-admin', ['Broker.Admin']);
  const registry = sandbox.registry.host;
  await sandbox.services.grants.create({
    id: 'demo-push',
    description: 'demo-pusher may push and pull demo/app',
    subjects: [{ objectId: pusher.objectId }],
    registry,
    repositories: ['demo/app'],
    actions: ['pull', 'push'],
    enabled: true,
  });
  await sandbox.services.grants.create({
    id: 'demo-pull',
    description: 'demo-puller may only pull demo/app',
    subjects: [{ objectId: puller.objectId }],
    registry,
    repositories: ['demo/app'],
    actions: ['pull'],
    enabled: true,
  });

  const imds = `${sandbox.entra.url}/metadata/identity/oauth2/token`;
  const endpoints = {
    broker: `${sandbox.broker.url}/api`,
    tenantId: sandbox.config.tenantId,
    audience: sandbox.config.audiences[0] ?? AUDIENCE,
    authority: sandbox.entra.url,
    imds,
    keyVault: sandbox.keyVault.url,
    tablesConnectionString: sandbox.azurite.connectionString,
    registry: { host: registry, url: sandbox.registry.url, tokenRealm: sandbox.tokens.realm, forms: sandbox.services.logins.forms({ host: registry }) },
    /** Every catalog registry and the credential forms it supports (POST /v1/tokens `form`). */
    registries: sandbox.config.registries.map((entry) => ({ host: entry.host, forms: sandbox.services.logins.forms(entry) })),
    registryTokenSeconds: tokenSeconds.data,
    identities: { pusher, puller, admin },
    /**
     * The environment for the CLI (`npm run build:cli`, then dist/registry-broker.mjs) against this
     * sandbox: its managed-identity library then asks the IMDS stand-in, as a workload's would ask IMDS.
     * Workload commands take `--client-id`; admin commands take `AZURE_CLIENT_ID` (the admin's).
     */
    cli: { REGISTRY_BROKER_URL: `${sandbox.broker.url}/api`, REGISTRY_BROKER_AUDIENCE: sandbox.config.audiences[0] ?? AUDIENCE, AZURE_POD_IDENTITY_AUTHORITY_HOST: sandbox.entra.url },
    /** Values for local.settings.json, to run the real Functions host (`func start`) against these stand-ins. */
    functionsSettings: {
      ...sandbox.env,
      IDENTITY_ENDPOINT: `${sandbox.entra.url}/msi/token`,
      IDENTITY_HEADER: sandbox.entra.identityHeader,
    },
  };
  await mkdir(STATE_DIR, { recursive: true });
  await writeFile(join(STATE_DIR, 'endpoints.json'), `${JSON.stringify(endpoints, null, 2)}\n`);
  // A ready image for the walkthrough, by absolute path so that it runs from any directory.
  const cliPath = resolve('dist/registry-broker.mjs');
  const demoImage = await writeOciLayout(join(resolve(STATE_DIR), 'demo-image'), 'the registry-broker sandbox');

  console.log(`registry-broker sandbox is running (Ctrl-C stops everything)

  broker          ${endpoints.broker}        (health: ${endpoints.broker}/v1/health)
  Entra ID        ${sandbox.entra.url}   tenant ${endpoints.tenantId}
  IMDS            ${imds}
  Key Vault       ${sandbox.keyVault.url}
  Table Storage   Azurite on port ${sandbox.azurite.port}
  registry        ${sandbox.registry.url}   (docker-registry, token realm ${sandbox.tokens.realm})
  endpoints file  ${join(STATE_DIR, 'endpoints.json')}

Walkthrough: push as demo-pusher

  # 1. the workload's managed-identity token, as IMDS hands it out
  MI=$(curl -s -H Metadata:true "${imds}?api-version=2018-02-01&resource=${endpoints.audience}&client_id=${pusher.clientId}" | jq -r .access_token)

  # 2. a registry token for exactly demo/app, pull and push
  TOKEN=$(curl -s -X POST ${endpoints.broker}/v1/tokens -H "Authorization: Bearer $MI" -H 'Content-Type: application/json' \\
    -d '{"registry":"${registry}","scopes":["repository:demo/app:pull,push"]}' | jq -r .token)

  # 3. push with it
  skopeo copy --dest-tls-verify=false --dest-registry-token "$TOKEN" oci:${demoImage}:latest docker://${registry}/demo/app:v1

  # or: a login credential (form "login") that outlives every registry token (${tokenSeconds.data} s here)
  LOGIN=$(curl -s -X POST ${endpoints.broker}/v1/tokens -H "Authorization: Bearer $MI" -H 'Content-Type: application/json' \\
    -d '{"registry":"${registry}","scopes":["repository:demo/app:pull,push"],"form":"login","ttlSeconds":3600}')
  skopeo copy --dest-tls-verify=false --dest-creds "$(jq -r '.username + ":" + .password' <<<"$LOGIN")" oci:${demoImage}:latest docker://${registry}/demo/app:v2

demo-puller (client_id ${puller.clientId}) may only pull demo/app: its push is refused by the registry,
and asking the broker for push gets 403.

The CLI against the sandbox (npm run build:cli first): its identity library asks the IMDS stand-in

  export REGISTRY_BROKER_URL=${endpoints.cli.REGISTRY_BROKER_URL} REGISTRY_BROKER_AUDIENCE=${endpoints.cli.REGISTRY_BROKER_AUDIENCE} AZURE_POD_IDENTITY_AUTHORITY_HOST=${endpoints.cli.AZURE_POD_IDENTITY_AUTHORITY_HOST}
  node ${cliPath} token --registry ${registry} --scope repository:demo/app:pull --client-id ${pusher.clientId}
  AZURE_CLIENT_ID=${admin.clientId} node ${cliPath} admin grants list     # demo-admin has Broker.Admin
${
  sandbox.realRegistry
    ? ''
    : '\nNote: /usr/bin/docker-registry is not installed, so the broker issues tokens but nothing accepts pushes.\nInstall it (sudo apt-get install -y docker-registry skopeo jq curl) and restart for the full walkthrough.\n'
}`);

  const stop = async () => {
    clearInterval(cleanup);
    await sandbox.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
