import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { bundledCli, OLDEST_NODE, runCli } from '../support/cli.js';
import { AUDIENCE, startHarness, type Harness } from '../support/harness.js';
import { writeOciImage } from '../support/ociImage.js';
import { e2eAvailable, push } from '../support/skopeo.js';

/** The workload side: the CLI gets its identity's token from IMDS, calls the broker, and hands the token on. */
describe.skipIf(!e2eAvailable())('registry-broker CLI', () => {
  let h: Harness;
  let image: string;
  let pusher: ManagedIdentity;
  let env: Record<string, string>;
  const common = () => ['--broker', `${h.sandbox.broker.url}/api`, '--audience', AUDIENCE, '--registry', h.sandbox.registry.host];

  beforeAll(async () => {
    h = await startHarness();
    image = await writeOciImage('cli');
    pusher = h.sandbox.identity('cli-pusher');
    await h.grant({ id: 'cli', subjects: [{ objectId: pusher.objectId }], repositories: ['acme/cli'], actions: ['pull', 'push'] });
    env = { AZURE_POD_IDENTITY_AUTHORITY_HOST: h.sandbox.entra.url };
  });
  afterAll(() => h?.close());

  it('token: prints a token that skopeo pushes with', async () => {
    const result = await runCli(['token', ...common(), '--scope', 'repository:acme/cli:pull,push', '--client-id', pusher.clientId], env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const token = result.stdout.trim();
    expect((await push(image, `${h.sandbox.registry.host}/acme/cli:v1`, token)).code).toBe(0);
  });

  it('token --json: prints the broker\'s whole answer', async () => {
    const result = await runCli(['token', ...common(), '--scope', 'repository:acme/cli:pull', '--client-id', pusher.clientId, '--json'], env);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ registry: h.sandbox.registry.host, scopes: ['repository:acme/cli:pull'] });
  });

  it('docker-login: merges a 0600 config whose registrytoken works, keeping other entries', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'registry-broker-docker-'));
    const path = join(dir, 'config.json');
    await writeFile(path, JSON.stringify({ auths: { 'other.example': { auth: 'dXNlcjpwYXNz' } }, credHelpers: { 'gcr.io': 'gcloud' } }), { mode: 0o644 });
    const result = await runCli(['docker-login', ...common(), '--scope', 'repository:acme/cli:pull,push', '--client-id', pusher.clientId, '--config-dir', dir], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/wrote a token for/);
    const config = JSON.parse(await readFile(path, 'utf8')) as { auths: Record<string, Record<string, string>>; credHelpers: unknown };
    expect(config.auths['other.example']).toEqual({ auth: 'dXNlcjpwYXNz' });
    expect(config.credHelpers).toEqual({ 'gcr.io': 'gcloud' });
    const token = config.auths[h.sandbox.registry.host]!.registrytoken!;
    expect((await push(image, `${h.sandbox.registry.host}/acme/cli:v2`, token)).code).toBe(0);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('docker-login leaves a config.json that is not JSON as it is, and says so in one line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'registry-broker-docker-'));
    const path = join(dir, 'config.json');
    await writeFile(path, '{ "auths": ');
    const result = await runCli(['docker-login', ...common(), '--scope', 'repository:acme/cli:pull', '--client-id', pusher.clientId, '--config-dir', dir], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`registry-broker: ${path} is not valid JSON; not overwriting it\n`);
    expect(await readFile(path, 'utf8')).toBe('{ "auths": ');
  });

  it('a refused request is one line naming what is missing, exit 1', async () => {
    const result = await runCli(['token', ...common(), '--scope', 'repository:acme/cli:delete', '--client-id', pusher.clientId], env);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/403.*repository:acme\/cli:delete/);
  });

  it('an unreachable broker is one line, exit 1', async () => {
    const result = await runCli(['token', '--broker', 'http://127.0.0.1:9/api', '--audience', AUDIENCE, '--registry', 'x', '--scope', 'repository:a:pull', '--client-id', pusher.clientId], env);
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/cannot reach the broker at http:\/\/127\.0\.0\.1:9\/api/);
  });

  it('no identity endpoint is one line, exit 1', async () => {
    const result = await runCli(['token', ...common(), '--scope', 'repository:acme/cli:pull'], { AZURE_POD_IDENTITY_AUTHORITY_HOST: 'http://127.0.0.1:9' });
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/no managed-identity token/);
    expect(result.stderr).toMatch(/--client-id selects a user-assigned one\)$/m);
  });

  it('a request the broker finds malformed (400) is wrong usage too: one line, exit 2', async () => {
    const result = await runCli(['token', ...common(), '--scope', 'repository:Acme/CLI:pull', '--client-id', pusher.clientId], env);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^registry-broker: broker answered 400: /);
  });

  it('a broker URL without /api: the 404 says where the API is', async () => {
    const result = await runCli(['token', '--broker', h.sandbox.broker.url, '--audience', AUDIENCE, '--registry', h.sandbox.registry.host, '--scope', 'repository:acme/cli:pull', '--client-id', pusher.clientId], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/broker answered 404: .*\(is http:\/\/127\.0\.0\.1:\d+ the API's base URL\? It ends in \/api\)/);
    const right = await runCli(['token', ...common(), '--scope', 'repository:acme/cli:nothing', '--client-id', pusher.clientId], env);
    expect(right.stderr).not.toMatch(/ends in \/api/);
  });

  it('wrong usage exits 2 with the usage text', async () => {
    const result = await runCli(['token', '--registry', 'x']);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^registry-broker: missing --broker \(or REGISTRY_BROKER_URL\)\n\nusage: registry-broker token /);
  });

  it('the bundled file, alone in a directory, on the oldest Node it supports: a token that pushes', async () => {
    const bundle = await bundledCli();
    const result = await runCli(['token', ...common(), '--scope', 'repository:acme/cli:pull,push', '--client-id', pusher.clientId], env, { program: [OLDEST_NODE, bundle] });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect((await push(image, `${h.sandbox.registry.host}/acme/cli:v3`, result.stdout.trim())).code).toBe(0);
  });
});
