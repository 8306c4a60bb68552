import { describe, expect, it } from 'vitest';
import { acrTokenName, scopeMapActions, scopeMapName } from '../../src/credentials/login/acrScopeMap.js';
import { DockerHubOatProvider } from '../../src/credentials/login/dockerHubOat.js';
import { BrokerError } from '../../src/errors.js';
import { statusOf } from '../../src/http/problem.js';
import { catalogSchema, RegistryCatalog } from '../../src/registries/catalog.js';
import { parseScope, type RepositoryScope } from '../../src/registries/scope.js';

const RID = '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/myreg';
const scopes = (...texts: string[]): RepositoryScope[] =>
  texts.map((text) => {
    const parsed = parseScope(text);
    if (!parsed.ok) throw new Error(parsed.message);
    return parsed.scope;
  });

describe('catalog login objects', () => {
  it('accepts the two providers, with their defaults', () => {
    const entries = new RegistryCatalog(
      catalogSchema.parse([
        { kind: 'dockerhub', credentialSecret: 'hub', login: { provider: 'dockerhub-oat', organization: 'acme', apiSecret: 'hub-oat-api' } },
        { kind: 'acr', host: 'myreg.azurecr.io', login: { provider: 'acr-scope-map', registryResourceId: RID } },
        { kind: 'token-auth', host: 'ghcr.io', credentialSecret: 'ghcr' },
      ]),
    ).entries();
    expect(entries.map((entry) => entry.login)).toEqual([
      { provider: 'dockerhub-oat', organization: 'acme', apiSecret: 'hub-oat-api', apiEndpoint: 'https://hub.docker.com' },
      { provider: 'acr-scope-map', registryResourceId: RID, armEndpoint: 'https://management.azure.com' },
      undefined,
    ]);
  });

  it.each([
    ['an unknown provider', { provider: 'ecr' }],
    ['an organization that is not a Hub name', { provider: 'dockerhub-oat', organization: 'Acme Corp', apiSecret: 'x' }],
    ['no apiSecret', { provider: 'dockerhub-oat', organization: 'acme' }],
    ['a resource ID that is not a registry', { provider: 'acr-scope-map', registryResourceId: '/subscriptions/x' }],
    ['an unknown field', { provider: 'acr-scope-map', registryResourceId: RID, tokenName: 'x' }],
    ['plain http to a remote ARM', { provider: 'acr-scope-map', registryResourceId: RID, armEndpoint: 'http://arm.example' }],
  ])('refuses %s', (_, login) => {
    expect(catalogSchema.safeParse([{ kind: 'acr', host: 'myreg.azurecr.io', login }]).success).toBe(false);
  });
});

describe('acr-scope-map names and actions', () => {
  it('maps each action to its content permission, in a canonical order', () => {
    expect(scopeMapActions(scopes('repository:b/x:pull,push,delete', 'repository:a/y:pull'))).toEqual([
      'repositories/a/y/content/read',
      'repositories/b/x/content/delete',
      'repositories/b/x/content/read',
      'repositories/b/x/content/write',
    ]);
  });

  it('names identical scope sets alike and different ones apart, within ACR\'s limits', () => {
    const one = scopeMapName(scopeMapActions(scopes('repository:a/y:pull', 'repository:b/x:push')));
    const same = scopeMapName(scopeMapActions(scopes('repository:b/x:push', 'repository:a/y:pull')));
    const other = scopeMapName(scopeMapActions(scopes('repository:a/y:pull,push')));
    expect(one).toBe(same);
    expect(one).not.toBe(other);
    for (const name of [one, acrTokenName('01JD0000000000000000000000')]) expect(name).toMatch(/^[a-zA-Z0-9-]{5,50}$/);
  });
});

describe('dockerhub-oat scope check', () => {
  const provider = new DockerHubOatProvider({ provider: 'dockerhub-oat', organization: 'acme', apiSecret: 'x', apiEndpoint: 'https://hub.docker.com' }, undefined as never, 1000);
  const refusal = (...texts: string[]) => {
    try {
      provider.check(scopes(...texts));
      return undefined;
    } catch (error) {
      return error instanceof BrokerError ? `${statusOf(error)} ${error.code}` : String(error);
    }
  };

  it('accepts what Docker Hub scopes express exactly', () => {
    expect(refusal('repository:acme/web:pull', 'repository:acme/api:pull,push', 'repository:acme/old:pull,push,delete')).toBeUndefined();
  });

  it('refuses actions a Hub scope would widen, and repositories outside the organization', () => {
    expect(refusal('repository:acme/web:push')).toBe('400 login-scope-unsupported');
    expect(refusal('repository:acme/web:pull,delete')).toBe('400 login-scope-unsupported');
    expect(refusal('repository:other/web:pull')).toBe('400 login-scope-unsupported');
    expect(refusal('repository:acmecorp/web:pull')).toBe('400 login-scope-unsupported');
  });
});
