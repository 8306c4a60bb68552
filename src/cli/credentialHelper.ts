import { CliError } from './brokerClient.js';
import { cachedLogin, forgetLogin, storeLogin, type CacheKey } from './credentialCache.js';
import { loadHelperConfig } from './helperConfig.js';
import { registryOfServerUrl } from './imageReference.js';
import { issueLogin } from './issue.js';
import { readStdin } from './stdin.js';
import { version } from './version.js';

/**
 * `docker-credential-registry-broker`: the docker credential-helper protocol (docker, buildx, and
 * containers/image's `credHelpers`, so skopeo and podman too). `get` reads the server URL on stdin
 * and answers a login credential for the configured scopes, from the disk cache while more than
 * half its life remains. The broker is the only store, so `store` and `erase` change nothing there;
 * `erase` (docker logout) drops the cached copy.
 */
const NOT_FOUND = 'credentials not found in native keychain';

async function keyFor(serverUrl: string): Promise<CacheKey | undefined> {
  const config = await loadHelperConfig();
  const registry = registryOfServerUrl(serverUrl);
  if (!registry) throw new CliError('get needs the registry server URL on standard input');
  const scopes = config.scopesFor(registry);
  return scopes ? { broker: config.broker, audience: config.audience, clientId: config.clientId, registry, scopes } : undefined;
}

async function issueAndKeep(key: CacheKey): Promise<{ username: string; password: string }> {
  const issued = await issueLogin({ ...key, selecting: 'REGISTRY_BROKER_CLIENT_ID (clientId in its config file) selects a user-assigned one' });
  // A cache that cannot be written (read-only home) only costs a fresh credential next time.
  await storeLogin(key, issued).catch(() => undefined);
  return issued;
}

async function get(serverUrl: string): Promise<void> {
  const key = await keyFor(serverUrl);
  if (!key) {
    // The protocol's "nothing here": the client carries on without credentials. Clients read stdout
    // only; the line on stderr is for whoever runs the helper by hand to find out why.
    process.stdout.write(`${NOT_FOUND}\n`);
    process.stderr.write(`registry-broker: no scopes configured for ${registryOfServerUrl(serverUrl)} (REGISTRY_BROKER_SCOPES, or "scopes" in the config file)\n`);
    process.exitCode = 1;
    return;
  }
  const login = (await cachedLogin(key)) ?? (await issueAndKeep(key));
  process.stdout.write(`${JSON.stringify({ ServerURL: serverUrl, Username: login.username, Secret: login.password })}\n`);
}

const USAGE = `usage: docker-credential-registry-broker get|store|erase|list

The docker credential-helper protocol; the request comes on standard input. Configured by
REGISTRY_BROKER_URL, REGISTRY_BROKER_AUDIENCE, REGISTRY_BROKER_CLIENT_ID (optional) and
REGISTRY_BROKER_SCOPES (space-separated), or $REGISTRY_BROKER_CONFIG (default
~/.config/registry-broker/config.json), a JSON object:
  { "broker": "https://…/api", "audience": "api://…", "clientId": "…",
    "scopes": { "docker.io": ["repository:acme/web:pull,push"] } }
where "scopes" may also be one list for every registry. Credentials are cached in
$REGISTRY_BROKER_CACHE_DIR (default ~/.cache/registry-broker) until half their life has passed;
"erase" (docker logout) drops the cached one.
`;

export async function runCredentialHelper(argv: string[]): Promise<void> {
  const [action, ...rest] = argv;
  if (action === '--help' || action === '-h') return void process.stdout.write(USAGE);
  if (rest.length > 0 || !action) throw new CliError(USAGE.split('\n')[0]!);
  if (action === 'list') return void process.stdout.write('{}\n');
  if (action === 'version') return void process.stdout.write(`registry-broker ${version()}\n`);
  if (!['get', 'store', 'erase'].includes(action)) throw new CliError(`unknown action "${action}"; the protocol has get, store, erase and list`);
  const input = (await readStdin()).trim();
  if (action === 'get') return get(input);
  if (action === 'erase') {
    const key = await keyFor(input);
    if (key) await forgetLogin(key);
  }
}
