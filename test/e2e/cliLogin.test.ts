import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { bundledCli, OLDEST_NODE, runCli } from '../support/cli.js';
import { AUDIENCE, startHarness, type Harness } from '../support/harness.js';
import { writeOciImage } from '../support/ociImage.js';
import { e2eAvailable, SKOPEO } from '../support/skopeo.js';

/**
 * The login form from the workload's side, against the sandbox's Docker Hub look-alike (organization
 * access tokens): the CLI's `--form login`, the docker credential helper as skopeo itself starts it
 * (containers/image `credHelpers`), and the kubelet credential provider — each answer proven by what
 * the real docker-registry accepts and refuses.
 */
function skopeo(args: string[], env: Record<string, string> = {}): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(SKOPEO, ['--insecure-policy', ...args], { timeout: 60_000, env: { ...process.env, REGISTRY_AUTH_FILE: '/nonexistent/auth.json', ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

describe.skipIf(!e2eAvailable())('registry-broker login clients', () => {
  let h: Harness;
  let image: string;
  let bundle: string;
  let pusher: ManagedIdentity;
  let puller: ManagedIdentity;
  let host: string;
  let imds: Record<string, string>;
  const common = () => ['--broker', `${h.sandbox.broker.url}/api`, '--audience', AUDIENCE, '--registry', host, '--client-id', pusher.clientId];
  const cli = (args: string[], env: Record<string, string> = {}, input?: string) =>
    runCli(args, { ...imds, ...env }, { program: [OLDEST_NODE, bundle], ...(input === undefined ? {} : { input }) });
  const push = (tag: string, extra: string[], env?: Record<string, string>) =>
    skopeo(['copy', '--dest-tls-verify=false', ...extra, `oci:${image}:latest`, `docker://${host}/${tag}`], env);
  const pull = async (reference: string, extra: string[], env?: Record<string, string>) =>
    skopeo(['copy', '--src-tls-verify=false', ...extra, `docker://${host}/${reference}`, `oci:${await mkdtemp(join(tmpdir(), 'registry-broker-pull-'))}:latest`], env);
  /** Distinct issued requests (the table may hold more than one row per record, e.g. search index rows). */
  const loginIssuances = async (objectId: string) =>
    new Set((await h.auditRecords()).filter((r) => r.objectId === objectId && r.outcome === 'issued' && typeof r.issuanceId === 'string').map((r) => r.issuanceId)).size;

  beforeAll(async () => {
    [h, bundle, image] = await Promise.all([startHarness({ login: true, loginOrganization: 'acme' }), bundledCli(), writeOciImage('cli-login')]);
    host = h.sandbox.registry.host;
    pusher = h.sandbox.identity('cli-login-pusher');
    puller = h.sandbox.identity('cli-login-puller');
    await h.grant({ id: 'cli-login-push', subjects: [{ objectId: pusher.objectId }], repositories: ['acme/app', 'acme/helper'], actions: ['pull', 'push'] });
    await h.grant({ id: 'cli-login-pull', subjects: [{ objectId: puller.objectId }], repositories: ['acme/**'], actions: ['pull'] });
    imds = { AZURE_POD_IDENTITY_AUTHORITY_HOST: h.sandbox.entra.url };
  });
  afterAll(() => h?.close());

  it('token --form login --json prints the whole answer; without --json "username:password" for skopeo --creds', async () => {
    const json = await cli(['token', ...common(), '--scope', 'repository:acme/app:pull,push', '--form', 'login', '--ttl', '1200', '--json']);
    expect(json).toMatchObject({ code: 0, stderr: '' });
    const answer = JSON.parse(json.stdout) as { username: string; password: string; expiresIn: number; dockerConfig: { auths: Record<string, { auth: string }> } };
    expect(answer).toMatchObject({ registry: host, form: 'login', username: 'acme', scopes: ['repository:acme/app:pull,push'], credentialId: expect.any(String), issuanceId: expect.any(String) });
    expect(answer.expiresIn).toBeGreaterThan(1100);
    expect(answer.expiresIn).toBeLessThanOrEqual(1200);
    expect(answer.dockerConfig.auths[host]!.auth).toBe(Buffer.from(`${answer.username}:${answer.password}`).toString('base64'));

    const plain = await cli(['token', ...common(), '--scope', 'repository:acme/app:pull,push', '--form', 'login']);
    expect(plain).toMatchObject({ code: 0, stderr: '' });
    expect((await push('acme/app:v1', ['--dest-creds', plain.stdout.trim()])).code).toBe(0);
    expect((await push('acme/other:v1', ['--dest-creds', plain.stdout.trim()])).code).not.toBe(0);
  });

  it('docker-login --form login writes an auth entry that skopeo --authfile uses; a registrytoken entry it ignores', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'registry-broker-docker-'));
    const path = join(dir, 'config.json');
    await writeFile(path, JSON.stringify({ auths: { 'other.example': { auth: 'dXNlcjpwYXNz' } } }));
    const tokenForm = await cli(['docker-login', ...common(), '--scope', 'repository:acme/app:pull,push', '--config-dir', dir]);
    expect(tokenForm.code).toBe(0);
    expect(Object.keys((JSON.parse(await readFile(path, 'utf8')) as { auths: Record<string, object> }).auths[host]!)).toEqual(['registrytoken']);
    expect((await push('acme/app:v2', ['--dest-authfile', path])).code).not.toBe(0);

    const loginForm = await cli(['docker-login', ...common(), '--scope', 'repository:acme/app:pull,push', '--form', 'login', '--config-dir', dir]);
    expect(loginForm).toMatchObject({ code: 0, stdout: '' });
    expect(loginForm.stderr).toMatch(new RegExp(`^registry-broker: wrote a login for ${host.replaceAll('.', '\\.')} \\(repository:acme/app:pull,push\\) to `));
    const config = JSON.parse(await readFile(path, 'utf8')) as { auths: Record<string, Record<string, string>> };
    expect(config.auths['other.example']).toEqual({ auth: 'dXNlcjpwYXNz' });
    expect(Object.keys(config.auths[host]!)).toEqual(['auth']);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await push('acme/app:v2', ['--dest-authfile', path])).code).toBe(0);
  });

  describe('docker-credential-registry-broker', () => {
    let bin: string;
    let env: Record<string, string>;
    const helper = (action: string, input: string) => runCli([action], env, { program: [join(bin, 'docker-credential-registry-broker')], input });

    beforeAll(async () => {
      bin = await mkdtemp(join(tmpdir(), 'registry-broker-bin-'));
      await symlink(bundle, join(bin, 'docker-credential-registry-broker'));
      env = {
        ...imds,
        PATH: `${bin}:${dirname(OLDEST_NODE)}:${process.env.PATH}`,
        REGISTRY_BROKER_URL: `${h.sandbox.broker.url}/api`,
        REGISTRY_BROKER_AUDIENCE: AUDIENCE,
        REGISTRY_BROKER_CLIENT_ID: pusher.clientId,
        REGISTRY_BROKER_SCOPES: 'repository:acme/helper:pull,push',
        REGISTRY_BROKER_CONFIG: join(bin, 'no-config.json'),
        REGISTRY_BROKER_CACHE_DIR: join(bin, 'cache'),
      };
      await writeFile(env.REGISTRY_BROKER_CONFIG!, '{}');
    });

    it('get answers {ServerURL, Username, Secret} that push, from a 0600 cache until half its life', async () => {
      const before = await loginIssuances(pusher.objectId);
      const first = await helper('get', `${host}\n`);
      expect(first).toMatchObject({ code: 0, stderr: '' });
      const answer = JSON.parse(first.stdout) as { ServerURL: string; Username: string; Secret: string };
      expect(answer).toEqual({ ServerURL: host, Username: 'acme', Secret: expect.stringMatching(/.{16,}/) });
      expect((await push('acme/helper:v1', ['--dest-creds', `${answer.Username}:${answer.Secret}`])).code).toBe(0);

      const again = await helper('get', host);
      expect(JSON.parse(again.stdout)).toEqual(answer);
      expect(await loginIssuances(pusher.objectId)).toBe(before + 1);
      const [file] = await readdir(join(bin, 'cache'));
      expect((await stat(join(bin, 'cache', file!))).mode & 0o777).toBe(0o600);

      expect(await helper('erase', host)).toMatchObject({ code: 0, stdout: '' });
      expect((await helper('get', host)).code).toBe(0);
      expect(await loginIssuances(pusher.objectId)).toBe(before + 2);
    });

    it('skopeo starts it through credHelpers and pushes and pulls with what it answers', async () => {
      const authFile = join(bin, 'auth.json');
      await writeFile(authFile, JSON.stringify({ credHelpers: { [host]: 'registry-broker' } }));
      const pushed = await push('acme/helper:v2', [], { ...env, REGISTRY_AUTH_FILE: authFile });
      expect(pushed.output).not.toMatch(/error/i);
      expect(pushed.code).toBe(0);
      expect((await pull('acme/helper:v2', [], { ...env, REGISTRY_AUTH_FILE: authFile })).code).toBe(0);
      expect((await push('acme/app:v3', [], { ...env, REGISTRY_AUTH_FILE: authFile })).code).not.toBe(0);
    });

    it('a refusal is one line on stderr, exit 1', async () => {
      const refused = await runCli(['get'], { ...env, REGISTRY_BROKER_SCOPES: 'repository:acme/app:delete', REGISTRY_BROKER_CACHE_DIR: join(bin, 'other-cache') }, { program: [join(bin, 'docker-credential-registry-broker')], input: host });
      expect(refused.code).toBe(1);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toMatch(/^registry-broker: broker answered 403: [^\n]*repository:acme\/app:delete[^\n]*\n$/);
    });
  });

  it('admin logins lists the live login credentials, never a password', async () => {
    const listed = await cli(['admin', 'logins', '--broker', `${h.sandbox.broker.url}/api`, '--audience', AUDIENCE], { AZURE_CLIENT_ID: h.admin.clientId });
    expect(listed).toMatchObject({ code: 0, stderr: '' });
    expect(listed.stdout).toMatch(/^REGISTRY\s+OBJECTID\s+SCOPES\s+STATE\s+EXPIRESAT/);
    expect(listed.stdout).toMatch(new RegExp(`${pusher.objectId}\\s+repository:acme/helper:pull,push\\s+live\\s`));
    const json = JSON.parse((await cli(['admin', 'logins', '--json', '--broker', `${h.sandbox.broker.url}/api`, '--audience', AUDIENCE], { AZURE_CLIENT_ID: h.admin.clientId })).stdout) as { credentials: object[] };
    expect(json.credentials.length).toBeGreaterThan(1);
    for (const credential of json.credentials) expect(Object.keys(credential)).not.toContain('password');
  });

  it('kubelet-credential-provider answers pull on exactly the image\'s repository, cached by the kubelet for half its life', async () => {
    const env = { REGISTRY_BROKER_URL: `${h.sandbox.broker.url}/api`, REGISTRY_BROKER_AUDIENCE: AUDIENCE, REGISTRY_BROKER_CLIENT_ID: puller.clientId };
    const request = { apiVersion: 'credentialprovider.kubelet.k8s.io/v1', kind: 'CredentialProviderRequest', image: `${host}/acme/app:v1` };
    const result = await cli(['kubelet-credential-provider'], env, JSON.stringify(request));
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const response = JSON.parse(result.stdout) as { cacheDuration: string; auth: Record<string, { username: string; password: string }> };
    expect(response).toMatchObject({ apiVersion: 'credentialprovider.kubelet.k8s.io/v1', kind: 'CredentialProviderResponse', cacheKeyType: 'Image' });
    expect(Object.keys(response.auth)).toEqual([`${host}/acme/app`]);
    const seconds = Number(/^(\d+)s$/.exec(response.cacheDuration)![1]);
    expect(seconds).toBeGreaterThan(1700);
    expect(seconds).toBeLessThanOrEqual(1800);
    const { username, password } = response.auth[`${host}/acme/app`]!;
    expect((await pull('acme/app:v1', ['--src-creds', `${username}:${password}`])).code).toBe(0);
    expect((await pull('acme/helper:v1', ['--src-creds', `${username}:${password}`])).code).not.toBe(0);
    expect((await push('acme/app:v9', ['--dest-creds', `${username}:${password}`])).code).not.toBe(0);
  });
});
