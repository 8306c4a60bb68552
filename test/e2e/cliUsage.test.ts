import { mkdtemp, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_COMMANDS } from '../../src/cli/admin.js';
import { WORKLOAD_COMMANDS } from '../../src/cli/workload.js';
import { bundledCli, OLDEST_NODE, runCli, type CliResult } from '../support/cli.js';

/**
 * The CLI as it ships — one bundled file in an empty directory, on the oldest Node it promises —
 * answering --help, --version and wrong usage the way the README says, and the credential helper's
 * and kubelet provider's protocol edges that need no broker.
 */
const COMMANDS = [...WORKLOAD_COMMANDS.map((c) => c.words), 'kubelet-credential-provider', ...ADMIN_COMMANDS.map((c) => `admin ${c.words}`)];

describe('registry-broker usage, bundled', () => {
  let bundle: string;
  const cli = (args: string[], env: Record<string, string> = {}, input?: string) =>
    runCli(args, env, { program: [OLDEST_NODE, bundle], ...(input === undefined ? {} : { input }) });

  beforeAll(async () => {
    bundle = await bundledCli();
  });

  it('is one file that runs with nothing beside it', async () => {
    expect(await readdir(dirname(bundle))).toEqual(['registry-broker.mjs']);
    const { version } = JSON.parse(await readFile('package.json', 'utf8')) as { version: string };
    const result = await cli(['--version']);
    expect(result).toMatchObject({ code: 0, stdout: `registry-broker ${version}\n`, stderr: '' });
    expect((await runCli(['--version'])).stdout).toBe(`registry-broker ${version}\n`);
  });

  // Each of these starts some thirty processes at once; on two busy cores that can take a while.
  it('--help on the CLI, on admin, on a group and on every command: usage on stdout, exit 0', { timeout: 90_000 }, async () => {
    const asks = [[], ['--help'], ['-h'], ['admin'], ['admin', '--help'], ['admin', 'grants', '--help'], ...COMMANDS.map((words) => [...words.split(' '), '--help'])];
    const results = await Promise.all(asks.map((args) => cli(args)));
    results.forEach((result: CliResult, i) => {
      const words = asks[i]!.filter((arg) => !arg.startsWith('-'));
      expect(result.code, words.join(' ')).toBe(0);
      expect(result.stderr, words.join(' ')).toBe('');
      // A group (admin, admin grants) shows the overview of its commands.
      const prefix = words.join(' ') === 'admin grants' ? 'admin' : words.join(' ');
      expect(result.stdout, words.join(' ')).toMatch(new RegExp(`^usage: registry-broker ${prefix}`.trimEnd()));
    });
    expect(results[5]!.stdout).toMatch(/grants apply -f grants\.yaml/);
    expect(results[5]!.stdout).not.toMatch(/issuances/);
    const helper = await cli(['docker-credential-helper', '--help']);
    expect(helper).toMatchObject({ code: 0, stderr: '' });
    expect(helper.stdout).toMatch(/^usage: docker-credential-registry-broker get\|store\|erase\|list\n/);
  });

  it('an unknown option, command or extra argument prints the usage on stderr and exits 2', { timeout: 90_000 }, async () => {
    const asks = [...COMMANDS.map((words) => [...words.split(' '), '--no-such-option']), ['--frobnicate'], ['frobnicate'], ['admin', 'grants', 'frobnicate'], ['admin', 'issuances', 'extra']];
    const results = await Promise.all(asks.map((args) => cli(args)));
    results.forEach((result, i) => {
      const label = asks[i]!.join(' ');
      expect(result.code, label).toBe(2);
      expect(result.stdout, label).toBe('');
      expect(result.stderr, label).toMatch(/\nusage: registry-broker /);
    });
    expect(results[0]!.stderr).toMatch(/^registry-broker: Unknown option '--no-such-option'/);
    expect(results.at(-1)!.stderr).toMatch(/^registry-broker: issuances takes no arguments/);
  });

  it('wrong values are usage errors too', async () => {
    const form = await cli(['token', '--broker', 'http://127.0.0.1:9/api', '--audience', 'a', '--registry', 'r', '--scope', 'repository:a:pull', '--form', 'password']);
    expect(form.code).toBe(2);
    expect(form.stderr).toMatch(/^registry-broker: --form is token or login, not "password"\n\nusage: registry-broker token/);
    expect((await cli(['admin', 'audit', '--since', 'yesterday'])).code).toBe(2);
    const tooFar = await cli(['admin', 'issuances', '--since', '40d']);
    expect(tooFar.code).toBe(2);
    expect(tooFar.stderr).toMatch(/^registry-broker: --since reaches back at most 31 days, not "40d"\n/);
    expect((await cli(['admin', 'grants', 'lint'])).stderr).toMatch(/missing -f grants\.yaml/);
  });

  describe('as docker-credential-registry-broker', () => {
    let helper: string;
    let env: Record<string, string>;
    const run = (args: string[], input?: string, extra: Record<string, string> = {}) =>
      runCli(args, { ...env, ...extra }, { program: [helper], ...(input === undefined ? {} : { input }) });

    beforeAll(async () => {
      const dir = await mkdtemp(join(tmpdir(), 'registry-broker-helper-'));
      helper = join(dir, 'docker-credential-registry-broker');
      await symlink(bundle, helper);
      await writeFile(join(dir, 'config.json'), JSON.stringify({ broker: 'http://127.0.0.1:9/api', audience: 'api://x', scopes: { 'ghcr.io': ['repository:a:pull'] } }));
      env = { REGISTRY_BROKER_CONFIG: join(dir, 'config.json'), REGISTRY_BROKER_CACHE_DIR: join(dir, 'cache'), PATH: `${dirname(OLDEST_NODE)}:${process.env.PATH}` };
    });

    it('list answers {}, store and erase accept and change nothing', async () => {
      expect(await run(['list'])).toMatchObject({ code: 0, stdout: '{}\n', stderr: '' });
      expect(await run(['store'], JSON.stringify({ ServerURL: 'ghcr.io', Username: 'u', Secret: 's' }))).toMatchObject({ code: 0, stdout: '', stderr: '' });
      expect(await run(['erase'], 'ghcr.io')).toMatchObject({ code: 0, stdout: '', stderr: '' });
    });

    it('get for a registry it has no scopes for is the protocol\'s "not found"', async () => {
      const result = await run(['get'], 'https://index.docker.io/v1/');
      expect(result).toMatchObject({ code: 1, stdout: 'credentials not found in native keychain\n' });
      // Clients read only stdout; by hand, stderr says why.
      expect(result.stderr).toBe('registry-broker: no scopes configured for docker.io (REGISTRY_BROKER_SCOPES, or "scopes" in the config file)\n');
    });

    it('every failure is one line on stderr, exit 1', async () => {
      const unreachable = await run(['get'], 'ghcr.io', { AZURE_POD_IDENTITY_AUTHORITY_HOST: 'http://127.0.0.1:9' });
      const unconfigured = await run(['get'], 'ghcr.io', { REGISTRY_BROKER_CONFIG: '/nonexistent.json' });
      const unknown = await run(['frobnicate']);
      const none = await run([]);
      for (const result of [unreachable, unconfigured, unknown, none]) {
        expect(result.code).toBe(1);
        expect(result.stdout).toBe('');
        expect(result.stderr.split('\n')).toEqual([expect.stringMatching(/^registry-broker: /), '']);
      }
      expect(unconfigured.stderr).toMatch(/cannot read \/nonexistent\.json/);
      // The helper takes no flags: the hint names the setting that selects an identity.
      expect(unreachable.stderr).toMatch(/REGISTRY_BROKER_CLIENT_ID \(clientId in its config file\) selects a user-assigned one\)$/m);
      expect(unreachable.stderr).not.toMatch(/--client-id/);
    });
  });

  it('kubelet-credential-provider refuses what is not a CredentialProviderRequest, in one line', async () => {
    const env = { REGISTRY_BROKER_URL: 'http://127.0.0.1:9/api', REGISTRY_BROKER_AUDIENCE: 'api://x' };
    const wrongKind = await cli(['kubelet-credential-provider'], env, JSON.stringify({ apiVersion: 'credentialprovider.kubelet.k8s.io/v1', kind: 'Other', image: 'nginx' }));
    const notJson = await cli(['kubelet-credential-provider'], env, 'nginx');
    const badImage = await cli(['kubelet-credential-provider'], env, JSON.stringify({ apiVersion: 'credentialprovider.kubelet.k8s.io/v1', kind: 'CredentialProviderRequest', image: 'Not/Valid' }));
    for (const result of [wrongKind, notJson, badImage]) {
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(badImage.stderr).toMatch(/cannot tell the repository of image "Not\/Valid"/);
  });
});
