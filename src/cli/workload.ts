import type { LoginAnswer, TokenAnswer } from './answers.js';
import { brokerTarget, CliError } from './brokerClient.js';
import { BROKER_FLAGS, type Command, type Flag, type Values } from './command.js';
import { dockerConfigPath, writeDockerAuth } from './dockerConfig.js';
import { issueLogin, issueToken, type CredentialRequest } from './issue.js';

/**
 * The workload's commands. A workload gets a credential with its own managed identity, in one line,
 * on ACI, a VM or in an ACR task step.
 */
const REQUEST_FLAGS: Flag[] = [
  ...BROKER_FLAGS,
  { name: 'registry', value: 'HOST', text: 'docker.io, ghcr.io, myreg.azurecr.io, …' },
  { name: 'scope', value: 'SCOPE', multiple: true, text: 'repository:<name>:<actions>; repeat for more repositories' },
  { name: 'client-id', value: 'ID', text: 'use this user-assigned managed identity (default: system-assigned)' },
  { name: 'form', value: 'FORM', text: 'token (default): a registry token; login: a username/password that lasts the whole job' },
  { name: 'ttl', value: 'SECONDS', text: 'login form: how long it should live (the broker caps it)' },
];

function request(values: Values): CredentialRequest {
  const { broker, audience } = brokerTarget(values);
  const registry = values.registry as string | undefined;
  if (!registry) throw new CliError('missing --registry', 2);
  const scopes = (values.scope as string[] | undefined) ?? [];
  if (scopes.length === 0) throw new CliError('missing --scope', 2);
  const ttl = values.ttl as string | undefined;
  if (ttl !== undefined && !/^[1-9]\d{0,5}$/.test(ttl)) throw new CliError(`--ttl takes a number of seconds, not "${ttl}"`, 2);
  return { broker, audience, registry, scopes, ...(values['client-id'] ? { clientId: values['client-id'] as string } : {}), ...(ttl ? { ttlSeconds: Number(ttl) } : {}) };
}

function issue(values: Values): Promise<TokenAnswer | LoginAnswer> {
  const form = (values.form as string | undefined) ?? 'token';
  if (form === 'token') {
    if (values.ttl !== undefined) throw new CliError('--ttl goes with --form login; a registry token lives as long as the registry says', 2);
    return issueToken(request(values));
  }
  if (form === 'login') return issueLogin(request(values));
  throw new CliError(`--form is token or login, not "${form}"`, 2);
}

export const WORKLOAD_COMMANDS: Command<undefined>[] = [
  {
    words: 'token',
    synopsis: '--registry HOST --scope SCOPE… [--form login] [--json]',
    summary: 'Print a registry token, or with --form login "username:password".',
    details: 'The token is for skopeo --registry-token and the like; the login for skopeo --creds. --json prints the broker\'s whole answer.',
    flags: [...REQUEST_FLAGS, { name: 'json', text: "print the broker's whole answer as JSON" }],
    run: async (values) => {
      const issued = await issue(values);
      const line = issued.form === 'login' ? `${issued.username}:${issued.password}` : issued.token;
      process.stdout.write(values.json ? `${JSON.stringify(issued, null, 2)}\n` : `${line}\n`);
    },
  },
  {
    words: 'docker-login',
    synopsis: '--registry HOST --scope SCOPE… [--form login] [--config-dir DIR]',
    summary: 'Write the credential into $DOCKER_CONFIG/config.json.',
    details:
      'Default ~/.docker, mode 0600, every other entry kept. A token becomes a "registrytoken" entry, which only docker reads (not skopeo, not podman); --form login writes an "auth" entry, which every client reads.',
    flags: [...REQUEST_FLAGS, { name: 'config-dir', value: 'DIR', text: 'where config.json lives (default $DOCKER_CONFIG or ~/.docker)' }],
    run: async (values) => {
      const issued = await issue(values);
      const path = dockerConfigPath(values['config-dir'] as string | undefined);
      for (const [key, entry] of Object.entries(issued.dockerConfig.auths)) await writeDockerAuth(path, key, entry);
      const what = issued.form === 'login' ? 'a login' : 'a token';
      process.stderr.write(`registry-broker: wrote ${what} for ${issued.registry} (${issued.scopes.join(' ')}) to ${path}; it expires at ${issued.expiresAt}\n`);
    },
  },
];
