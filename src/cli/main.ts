#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { BROKER_OPTIONS, brokerTarget, callBroker, callerToken, CliError, managedIdentity, type IssuedCredential } from './brokerClient.js';
import { ADMIN_USAGE, runAdmin } from './admin.js';
import { dockerConfigPath, writeRegistryToken } from './dockerConfig.js';

/**
 * The caller-side CLI. A workload gets a registry token with its own managed identity, in one line,
 * on ACI, a VM or in an ACR task step:
 *   registry-broker token --broker URL --audience api://registry-broker --registry docker.io --scope repository:acme/web:pull,push
 *   registry-broker docker-login … (writes the token into $DOCKER_CONFIG/config.json)
 */
const USAGE = `usage: registry-broker <command> [options]

commands:
  token          print a registry token (--json: the broker's whole answer)
  docker-login   write the token as "registrytoken" into $DOCKER_CONFIG/config.json (default ~/.docker)
  admin          grants, issuances, blocks, credentials, rotation, audit (see: registry-broker admin)

options:
  --broker URL        the broker's API base, e.g. https://broker.azurewebsites.net/api  (env REGISTRY_BROKER_URL)
  --audience URI      the broker's App ID URI or client ID                             (env REGISTRY_BROKER_AUDIENCE)
  --registry HOST     docker.io, ghcr.io, myreg.azurecr.io, …
  --scope SCOPE       repository:<name>:<actions>; repeat for more repositories
  --client-id ID      use this user-assigned managed identity (default: system-assigned)
  --config-dir DIR    docker-login: where config.json lives (default $DOCKER_CONFIG or ~/.docker)
  --json              token: print the whole answer as JSON
`;

function required(value: string | undefined, name: string): string {
  if (!value) throw new CliError(`missing --${name}\n\n${USAGE}`, 2);
  return value;
}

async function issue(values: Record<string, string | string[] | boolean | undefined>): Promise<IssuedCredential> {
  const { broker, audience } = brokerTarget(values, USAGE);
  const registry = required(values.registry as string | undefined, 'registry');
  const scopes = (values.scope as string[] | undefined) ?? [];
  if (scopes.length === 0) throw new CliError(`missing --scope\n\n${USAGE}`, 2);
  const bearer = await callerToken(managedIdentity(values['client-id'] as string | undefined), audience);
  return callBroker<IssuedCredential>(broker, '/v1/tokens', bearer, { method: 'POST', body: { registry, scopes } });
}

export async function run(argv: string[]): Promise<void> {
  if (argv[0] === 'admin') return argv.length === 1 ? void process.stdout.write(ADMIN_USAGE) : runAdmin(argv.slice(1));
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...BROKER_OPTIONS,
      registry: { type: 'string' },
      scope: { type: 'string', multiple: true },
      'client-id': { type: 'string' },
      'config-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command] = positionals;
  if (values.help || !command) {
    process.stdout.write(USAGE);
    return;
  }
  if (command === 'token') {
    const issued = await issue(values);
    process.stdout.write(values.json ? `${JSON.stringify(issued, null, 2)}\n` : `${issued.token}\n`);
    return;
  }
  if (command === 'docker-login') {
    const issued = await issue(values);
    const path = dockerConfigPath(values['config-dir']);
    for (const [key, entry] of Object.entries(issued.dockerConfig.auths)) await writeRegistryToken(path, key, entry.registrytoken);
    process.stderr.write(`registry-broker: wrote a token for ${issued.registry} (${issued.scopes.join(' ')}) to ${path}; it expires at ${issued.expiresAt}\n`);
    return;
  }
  throw new CliError(`unknown command "${command}"\n\n${USAGE}`, 2);
}

run(process.argv.slice(2)).catch((error: unknown) => {
  const usage = (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
  const message = error instanceof CliError || usage ? (error as Error).message : String(error);
  process.stderr.write(`registry-broker: ${message}\n`);
  process.exit(error instanceof CliError ? error.exitCode : usage ? 2 : 1);
});
