import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const valid = {
  BROKER_TENANT_ID: '72f988bf-86f1-41af-91ab-2d7cd011db47',
  BROKER_AUDIENCES: 'api://registry-broker, 0b5e1c52-8d3e-4f9a-9e5b-1a2b3c4d5e6f',
  KEY_VAULT_URL: 'https://broker-kv.vault.azure.net/',
  TABLES_ENDPOINT: 'https://brokerstore.table.core.windows.net',
  REGISTRIES: JSON.stringify([{ kind: 'dockerhub', credentialSecret: 'dockerhub' }, { kind: 'token-auth', host: 'GHCR.io', credentialSecret: 'ghcr' }]),
};

function problems(env: Record<string, string | undefined>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('reads valid settings with defaults', () => {
    const config = loadConfig(valid);
    expect(config.audiences).toEqual(['api://registry-broker', '0b5e1c52-8d3e-4f9a-9e5b-1a2b3c4d5e6f']);
    expect(config.authorityHost).toBe('https://login.microsoftonline.com');
    expect(config.keyVaultUrl).toBe('https://broker-kv.vault.azure.net');
    expect(config.adminRole).toBe('Broker.Admin');
    expect(config.maxTtlSeconds).toBe(5400);
    expect(config.tables).toEqual({ kind: 'endpoint', url: 'https://brokerstore.table.core.windows.net' });
    expect(config.registries.map((r) => r.host)).toEqual(['docker.io', 'ghcr.io']);
  });

  it.each([
    ['BROKER_TENANT_ID', { BROKER_TENANT_ID: undefined }],
    ['BROKER_TENANT_ID', { BROKER_TENANT_ID: 'contoso.onmicrosoft.com' }],
    ['BROKER_AUDIENCES', { BROKER_AUDIENCES: ' , ' }],
    ['KEY_VAULT_URL', { KEY_VAULT_URL: 'http://broker-kv.vault.azure.net' }],
    ['AZURE_AUTHORITY_HOST', { AZURE_AUTHORITY_HOST: 'http://evil.example' }],
    ['TABLES_ENDPOINT', { TABLES_ENDPOINT: undefined }],
    ['TABLES_ENDPOINT', { TABLES_CONNECTION_STRING: 'UseDevelopmentStorage=true' }],
    ['REGISTRIES', { REGISTRIES: 'not json' }],
    ['REGISTRIES', { REGISTRIES: '[]' }],
    ['REGISTRIES', { REGISTRIES: JSON.stringify([{ kind: 'nexus', host: 'x.io', credentialSecret: 'x' }]) }],
    ['REGISTRIES', { REGISTRIES: JSON.stringify([{ kind: 'token-auth', host: 'x.io', credentialSecret: 'bad/name' }]) }],
    ['REGISTRIES', { REGISTRIES: JSON.stringify([{ kind: 'token-auth', host: 'x.io', credentialSecret: 'x', endpoint: 'http://10.0.0.5:5000' }]) }],
    ['REGISTRIES', { REGISTRIES: JSON.stringify([{ kind: 'token-auth', host: 'x.io', credentialSecret: 'a' }, { kind: 'token-auth', host: 'X.io', credentialSecret: 'b' }]) }],
    ['REGISTRIES', { REGISTRIES: JSON.stringify([{ kind: 'acr', host: 'myreg.evil.example' }]) }],
    ['REGISTRIES', { REGISTRIES: JSON.stringify([{ kind: 'token-auth', host: 'x.io', credentialSecret: 'x', endpont: 'https://typo' }]) }],
    // Look-alike loopback (issue 9 M2): only localhost, 127.0.0.0/8 literals and [::1] may use plain http.
    ['KEY_VAULT_URL', { KEY_VAULT_URL: 'http://127.evil.com' }],
    ['KEY_VAULT_URL', { KEY_VAULT_URL: 'http://127.0.0.1.nip.io:8443' }],
    ['AZURE_AUTHORITY_HOST', { AZURE_AUTHORITY_HOST: 'http://localhost.evil.com' }],
    ['REGISTRIES', { REGISTRIES: JSON.stringify([{ kind: 'token-auth', host: 'x.io', credentialSecret: 'x', endpoint: 'http://127.evil.com:5000' }]) }],
    // The broker's Entra token for ACR goes to the endpoint (issue 9 M3).
    ['REGISTRIES', { REGISTRIES: JSON.stringify([{ kind: 'acr', host: 'myreg.azurecr.io', endpoint: 'https://collector.evil.example' }]) }],
    // Grace shorter than token + cache + stale window (issue 9 L8): 3600 + 300 + 3600 s > 120 min.
    ['REGISTRIES', { MAX_TTL_SECONDS: '3600', REGISTRIES: JSON.stringify([{ kind: 'dockerhub', credentialSecret: 'd', rotation: { provider: 'none', graceMinutes: 120 } }]) }],
    ['MAX_TTL_SECONDS', { MAX_TTL_SECONDS: 'forever' }],
    ['MAX_TTL_SECONDS', { MAX_TTL_SECONDS: '10' }],
  ])('names %s when it is bad', (setting, change) => {
    const found = problems({ ...valid, ...change });
    expect(found.some((problem) => problem.startsWith(setting))).toBe(true);
  });

  it('never echoes a connection string in its message', () => {
    const secret = 'DefaultEndpointsProtocol=https;AccountName=x;AccountKey=c2VjcmV0;';
    const found = problems({ ...valid, TABLES_CONNECTION_STRING: secret });
    expect(found.join('\n')).not.toContain('c2VjcmV0');
  });

  it('allows plain http only for loopback endpoints', () => {
    const config = loadConfig({
      ...valid,
      KEY_VAULT_URL: 'http://127.0.0.1:8443',
      REGISTRIES: JSON.stringify([{ kind: 'token-auth', host: '127.0.0.1:5000', endpoint: 'http://127.0.0.1:5000', credentialSecret: 'r' }]),
    });
    expect(config.keyVaultUrl).toBe('http://127.0.0.1:8443');
    for (const url of ['http://localhost:8443', 'http://[::1]:8443', 'http://127.1.2.3:8443']) expect(loadConfig({ ...valid, KEY_VAULT_URL: url }).keyVaultUrl).toBe(url);
  });

  it('names the grace rule with the stale window in it, and accepts a grace that outlasts all three', () => {
    const registries = (graceMinutes: number) => JSON.stringify([{ kind: 'dockerhub', credentialSecret: 'd', rotation: { provider: 'none', graceMinutes } }]);
    expect(problems({ ...valid, REGISTRIES: registries(150) }).join('\n')).toContain('CREDENTIAL_STALE_SECONDS');
    expect(loadConfig({ ...valid, REGISTRIES: registries(156) }).registries).toHaveLength(1);
    expect(loadConfig({ ...valid, CREDENTIAL_STALE_SECONDS: '0', REGISTRIES: registries(100) }).registries).toHaveLength(1);
  });
});

describe('local.settings.sample.json', () => {
  it('lists every setting the broker reads, each with a comment', async () => {
    const { readFile } = await import('node:fs/promises');
    const { SETTING_NAMES } = await import('../../src/config.js');
    const sample = JSON.parse(await readFile(new URL('../../local.settings.sample.json', import.meta.url), 'utf8')) as {
      Values: Record<string, string>;
      Comments: Record<string, string>;
    };
    for (const name of SETTING_NAMES) {
      expect(sample.Comments[name], name).toBeTruthy();
    }
    const { TABLES_ENDPOINT: _either, ...values } = Object.fromEntries(SETTING_NAMES.map((n) => [n, sample.Values[n] ?? sample.Comments[n]]));
    expect(Object.values(values).every(Boolean)).toBe(true);
  });
});
