import { mkdtemp, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cachedLogin, forgetLogin, storeLogin } from '../../src/cli/credentialCache.js';
import { lintGrants } from '../../src/cli/grantsFile.js';
import { loadHelperConfig } from '../../src/cli/helperConfig.js';
import { parseImage, registryOfServerUrl } from '../../src/cli/imageReference.js';
import { allPages } from '../../src/cli/pages.js';
import { unmatchableSegment } from '../../src/cli/patternCoverage.js';
import { matchesRepository } from '../../src/grants/pattern.js';
import { isRepositoryName } from '../../src/registries/scope.js';
import { splitNodeWarnings } from '../support/cli.js';

const OID = '9d1c4b8e-1f0a-4c5e-8a61-3b2f7c9d0e11';
const grant = (fields: string) => `  - id: web
    registry: docker.io
    subjects: [{ objectId: ${OID} }]
    repositories: [acme/web]
    actions: [pull]
${fields}`;

describe('grants lint', () => {
  const findings = (text: string, catalog?: string[]) => lintGrants(text, catalog).findings.map((f) => `${f.line}: ${f.where}: ${f.message}`);

  it('passes a good file and returns its grants as the broker would store them', () => {
    const result = lintGrants(`grants:\n${grant('')}  - { id: ci, registry: GHCR.io, subjects: [{ appId: ${OID.toUpperCase()} }], repositories: ["acme/**"], actions: [push, pull] }\n`, ['docker.io', 'ghcr.io']);
    expect(result.findings).toEqual([]);
    expect(result.grants[1]).toMatchObject({ registry: 'ghcr.io', subjects: [{ appId: OID }], actions: ['pull', 'push'], enabled: true });
  });

  it('catches an unknown action, naming the allowed ones and the line', () => {
    expect(findings(`grants:\n${grant('').replace('[pull]', '[pull, pusj]')}`)).toEqual(['6: grants[0].actions[1]: unknown action "pusj"; allowed: pull, push, delete']);
  });

  it('catches malformed subjects: not a GUID, an unknown key, an empty list', () => {
    expect(findings(`grants:\n${grant('').replace(`[{ objectId: ${OID} }]`, '[{ objectId: not-a-guid }, { oid: x }]')}`)).toEqual([
      '4: grants[0].subjects[0].objectId: malformed subject "not-a-guid": a subject is { objectId: <GUID> } or { appId: <GUID> }',
      '4: grants[0].subjects[1]: malformed subject {"oid":"x"}: a subject is { objectId: <GUID> } or { appId: <GUID> }',
    ]);
    expect(findings(`grants:\n${grant('').replace(`[{ objectId: ${OID} }]`, '[]')}`)).toHaveLength(1);
  });

  it('catches duplicate ids, pointing at the first', () => {
    expect(findings(`grants:\n${grant('')}${grant('')}`)).toEqual(['7: grants[1].id: duplicate id "web" (first on line 2)']);
  });

  it('catches patterns that can never match, and only those', () => {
    const text = `grants:\n${grant('').replace('[acme/web]', '[acme/web-, "acme/*.", "acme/*_-x", "acme/**", "acme/web-*", "*/a__b", acme/-x]')}`;
    expect(findings(text)).toEqual([
      '5: grants[0].repositories[0]: pattern "acme/web-" can never match: no repository name has a segment "web-"',
      '5: grants[0].repositories[1]: pattern "acme/*." can never match: no repository name has a segment "*."',
      '5: grants[0].repositories[2]: pattern "acme/*_-x" can never match: no repository name has a segment "*_-x"',
      '5: grants[0].repositories[6]: pattern "acme/-x" can never match: no repository name has a segment "-x"',
    ]);
  });

  it('catches a registry the broker does not serve, only when the catalog is known', () => {
    const text = `grants:\n${grant('').replace('docker.io', 'quay.io')}`;
    expect(findings(text)).toEqual([]);
    expect(findings(text, ['docker.io'])).toEqual(['3: grants[0].registry: registry "quay.io" is not in the broker\'s catalog (docker.io)']);
  });

  it('uses the broker\'s schema for everything else: unknown fields, bad ids, bad names, wrong types', () => {
    const text = `grants:\n${grant('    maxTtl: 60\n').replace('id: web', 'id: Web!').replace('[acme/web]', '[Acme/Web]')}  - just a string\n`;
    expect(findings(text).map((f) => f.split(': ')[1]).sort()).toEqual(['grants[0]', 'grants[0].id', 'grants[0].repositories[0]', 'grants[1]']);
  });

  it('reports YAML errors and a wrong top level', () => {
    expect(findings('grants: [')[0]).toMatch(/^1: yaml: /);
    expect(findings('grants: []\nextra: 1\n')).toEqual(['1: : the file must be one mapping with a single key, grants: a list of grants']);
    expect(findings('grants:\n  - id: a\n    id: b\n')[0]).toMatch(/yaml: Map keys must be unique/);
  });
});

describe('pattern coverage', () => {
  // Brute force over short names built from the letters the automaton tells apart.
  const names: string[] = [];
  const grow = (prefix: string) => {
    if (prefix.length > 0 && isRepositoryName(prefix)) names.push(prefix);
    if (prefix.length < 5) for (const c of ['a', 'b', 'x', '1', '.', '_', '-']) grow(prefix + c);
  };
  grow('');

  it.each(['a', '*', 'a*', '*-*', '*.', '-*', '*__*', 'a_*_b', '*---*', 'a.*', '_', '*_-', 'a..b', '*x', 'x-', 'a__b', 'a___b'])('agrees with brute force on "%s"', (segment) => {
    const matchable = names.some((name) => matchesRepository(segment, name));
    expect(unmatchableSegment(segment) === undefined).toBe(matchable);
  });
});

describe('registry names from clients', () => {
  it('maps docker server URLs and image references to catalog hosts and repositories', () => {
    expect(registryOfServerUrl('https://index.docker.io/v1/')).toBe('docker.io');
    expect(registryOfServerUrl('127.0.0.1:5000')).toBe('127.0.0.1:5000');
    expect(parseImage('nginx:1.27')).toEqual({ host: 'docker.io', registry: 'docker.io', repository: 'library/nginx' });
    expect(parseImage('index.docker.io/acme/web@sha256:00')).toEqual({ host: 'index.docker.io', registry: 'docker.io', repository: 'acme/web' });
    expect(parseImage('127.0.0.1:5000/acme/web:v1')).toEqual({ host: '127.0.0.1:5000', registry: '127.0.0.1:5000', repository: 'acme/web' });
    expect(parseImage('Acme/Web')).toBeUndefined();
  });
});

describe('paging', () => {
  it('follows nextCursor to the end, or stops at the limit', async () => {
    const pages: Record<string, { items: number[]; nextCursor?: string }> = { start: { items: [1, 2], nextCursor: 'b' }, b: { items: [], nextCursor: 'c' }, c: { items: [3] } };
    const asked: (string | undefined)[] = [];
    const read = async (cursor: string | undefined) => (asked.push(cursor), pages[cursor ?? 'start']!);
    expect(await allPages(read)).toEqual({ items: [1, 2, 3] });
    expect(asked).toEqual([undefined, 'b', 'c']);
    expect(await allPages(read, 2)).toEqual({ items: [1, 2], nextCursor: 'b' });
  });
});

describe('Node warnings on stderr', () => {
  it('sets aside exactly the deprecation lines Node prints, and keeps everything else', () => {
    const stderr = [
      '(node:4242) [DEP0040] DeprecationWarning: The `punycode` module is deprecated.',
      '(Use `node --trace-deprecation ...` to show where the warning was created)',
      'registry-broker: something the CLI said',
      '(node:4242) ExperimentalWarning: not a deprecation',
      '',
    ].join('\n');
    const split = splitNodeWarnings(stderr);
    expect(split.warnings).toHaveLength(2);
    expect(split.stderr).toBe('registry-broker: something the CLI said\n(node:4242) ExperimentalWarning: not a deprecation\n');
    expect(splitNodeWarnings('').stderr).toBe('');
  });
});

describe('credential helper parts', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  it('caches a login in a 0600 file until half its life, then asks again', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'registry-broker-cache-'));
    process.env.REGISTRY_BROKER_CACHE_DIR = join(dir, 'cache');
    const key = { broker: 'http://b', audience: 'api://x', registry: 'docker.io', scopes: ['repository:a:pull'] };
    const now = Date.now();
    await storeLogin(key, { username: 'u', password: 'p', expiresAt: new Date(now + 3600_000).toISOString(), expiresIn: 3600 }, now);
    expect(await cachedLogin(key, now + 1799_000)).toMatchObject({ username: 'u', password: 'p' });
    expect(await cachedLogin(key, now + 1800_000)).toBeUndefined();
    expect(await cachedLogin({ ...key, scopes: ['repository:a:pull,push'] }, now)).toBeUndefined();
    const [file] = await readdir(join(dir, 'cache'));
    expect((await stat(join(dir, 'cache', file!))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'cache'))).mode & 0o777).toBe(0o700);
    await forgetLogin(key);
    expect(await cachedLogin(key, now)).toBeUndefined();
  });

  it('reads the environment first, then the config file, and says what is missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'registry-broker-config-'));
    const file = join(dir, 'config.json');
    await writeFile(file, JSON.stringify({ broker: 'https://file/api', audience: 'api://file', scopes: { 'docker.io': ['repository:acme/web:pull'] } }));
    for (const name of ['REGISTRY_BROKER_URL', 'REGISTRY_BROKER_AUDIENCE', 'REGISTRY_BROKER_CLIENT_ID', 'REGISTRY_BROKER_SCOPES']) delete process.env[name];
    process.env.REGISTRY_BROKER_CONFIG = file;
    const fromFile = await loadHelperConfig();
    expect(fromFile).toMatchObject({ broker: 'https://file/api', audience: 'api://file' });
    expect(fromFile.scopesFor('docker.io')).toEqual(['repository:acme/web:pull']);
    expect(fromFile.scopesFor('ghcr.io')).toBeUndefined();
    Object.assign(process.env, { REGISTRY_BROKER_URL: 'https://env/api', REGISTRY_BROKER_SCOPES: 'repository:a:pull  repository:b:push' });
    const fromEnv = await loadHelperConfig();
    expect(fromEnv.broker).toBe('https://env/api');
    expect(fromEnv.scopesFor('ghcr.io')).toEqual(['repository:a:pull', 'repository:b:push']);
    await writeFile(file, JSON.stringify({ brokr: 'typo' }));
    await expect(loadHelperConfig()).rejects.toThrow(/Unrecognized key/);
    process.env.REGISTRY_BROKER_CONFIG = join(dir, 'missing.json');
    await expect(loadHelperConfig()).rejects.toThrow(/cannot read .*missing\.json: ENOENT/);
  });
});
