import { describe, expect, it } from 'vitest';
import { RegistryCatalog, catalogSchema } from '../../src/registries/catalog.js';
import { retryAfterMs } from '../../src/http/upstreamHttp.js';

const catalog = new RegistryCatalog(
  catalogSchema.parse([
    { kind: 'dockerhub', credentialSecret: 'dockerhub' },
    { kind: 'token-auth', host: 'ghcr.io', credentialSecret: 'ghcr' },
    { kind: 'token-auth', host: '127.0.0.1:5000', endpoint: 'http://127.0.0.1:5000', credentialSecret: 'local', timeoutSeconds: 3 },
  ]),
);

describe('RegistryCatalog', () => {
  it('knows Docker Hub\'s realm and config key, under its usual names', () => {
    for (const name of ['docker.io', 'DOCKER.IO', 'index.docker.io', 'registry-1.docker.io']) {
      const entry = catalog.find(name);
      expect(entry?.host).toBe('docker.io');
      expect(entry?.baseUrl).toBe('https://registry-1.docker.io');
      expect(entry?.knownChallenge).toEqual({ realm: 'https://auth.docker.io/token', service: 'registry.docker.io' });
      expect(entry?.dockerConfigKey).toBe('https://index.docker.io/v1/');
    }
  });

  it('discovers realms for token-auth registries and keys docker config by host', () => {
    const ghcr = catalog.find('ghcr.io');
    expect(ghcr?.baseUrl).toBe('https://ghcr.io');
    expect(ghcr?.knownChallenge).toBeUndefined();
    expect(ghcr?.dockerConfigKey).toBe('ghcr.io');
    expect(ghcr?.timeoutMs).toBe(10_000);
    expect(catalog.find('127.0.0.1:5000')?.timeoutMs).toBe(3000);
  });

  it('uses a pinned realm instead of discovering one, and wants both realm and service', () => {
    const pinned = new RegistryCatalog(
      catalogSchema.parse([{ kind: 'token-auth', host: 'quay.io', credentialSecret: 'q', realm: 'https://quay.io/v2/auth', service: 'quay.io' }]),
    );
    expect(pinned.find('quay.io')?.knownChallenge).toEqual({ realm: 'https://quay.io/v2/auth', service: 'quay.io' });
    expect(catalogSchema.safeParse([{ kind: 'token-auth', host: 'quay.io', credentialSecret: 'q', realm: 'https://quay.io/v2/auth' }]).success).toBe(false);
    expect(catalogSchema.safeParse([{ kind: 'token-auth', host: 'quay.io', credentialSecret: 'q', realm: 'http://quay.io/v2/auth', service: 'quay.io' }]).success).toBe(false);
  });

  it('Docker Hub never discovers a realm, not even behind an endpoint override (issue 9 H1)', () => {
    const mirrored = new RegistryCatalog(catalogSchema.parse([{ kind: 'dockerhub', credentialSecret: 'd', endpoint: 'https://mirror.example' }]));
    expect(mirrored.find('docker.io')?.knownChallenge).toEqual({ realm: 'https://auth.docker.io/token', service: 'registry.docker.io' });
  });

  it('approves a discovered realm on the registry\'s own host, its endpoint\'s host and realmHosts only', () => {
    const entries = new RegistryCatalog(
      catalogSchema.parse([
        { kind: 'token-auth', host: 'ghcr.io', credentialSecret: 'g' },
        { kind: 'token-auth', host: 'harbor.example:8443', endpoint: 'https://harbor-internal.example', credentialSecret: 'h', realmHosts: ['Auth.Example'] },
      ]),
    );
    expect(entries.find('ghcr.io')?.realmHosts).toEqual(['ghcr.io']);
    expect(entries.find('harbor.example:8443')?.realmHosts).toEqual(['harbor.example', 'harbor-internal.example', 'auth.example']);
    for (const bad of ['https://auth.example', 'auth.example:443', '']) {
      expect(catalogSchema.safeParse([{ kind: 'token-auth', host: 'q.example', credentialSecret: 'q', realmHosts: [bad] }]).success).toBe(false);
    }
  });

  it('refuses an acr entry whose endpoint is not an ACR login server (the broker\'s Entra token goes there; issue 9 M3)', () => {
    expect(catalogSchema.safeParse([{ kind: 'acr', host: 'myreg.azurecr.io', endpoint: 'https://collector.evil.example' }]).success).toBe(false);
    expect(catalogSchema.safeParse([{ kind: 'acr', host: 'myreg.azurecr.io', endpoint: 'https://127.evil.com' }]).success).toBe(false);
    expect(catalogSchema.safeParse([{ kind: 'acr', host: 'myreg.azurecr.io', endpoint: 'https://myreg-westeu.azurecr.io' }]).success).toBe(true);
    expect(catalogSchema.safeParse([{ kind: 'acr', host: 'myreg.azurecr.io', endpoint: 'http://127.0.0.1:5000' }]).success).toBe(true);
  });

  it('does not know registries outside the catalog', () => {
    expect(catalog.find('quay.io')).toBeUndefined();
    expect(catalog.find('ghcr.io.evil.example')).toBeUndefined();
  });
});

describe('retryAfterMs', () => {
  const response = (value?: string) => new Response(null, { status: 429, headers: value === undefined ? {} : { 'Retry-After': value } });
  it('reads seconds and HTTP dates, ignores junk', () => {
    expect(retryAfterMs(response('2'), 0)).toBe(2000);
    expect(retryAfterMs(response('Thu, 01 Jan 1970 00:00:10 GMT'), 4000)).toBe(6000);
    expect(retryAfterMs(response('soon'), 0)).toBeUndefined();
    expect(retryAfterMs(response(), 0)).toBeUndefined();
  });
});

describe('readJson', () => {
  it('refuses an oversized upstream body without reading it all', async () => {
    const { readJson } = await import('../../src/http/upstreamHttp.js');
    const huge = new Response(JSON.stringify({ token: 'x'.repeat(300_000) }));
    await expect(readJson(huge, 'r.example')).rejects.toMatchObject({ kind: 'upstream-failed', detail: 'r.example answered with an oversized body.' });
    const declared = new Response('{}', { headers: { 'content-length': String(10 * 1024 * 1024) } });
    await expect(readJson(declared, 'r.example')).rejects.toMatchObject({ kind: 'upstream-failed' });
    await expect(readJson(new Response('{"token":"t"}'), 'r.example')).resolves.toEqual({ token: 't' });
    await expect(readJson(new Response('not json'), 'r.example')).rejects.toMatchObject({ kind: 'upstream-failed' });
  });
});
