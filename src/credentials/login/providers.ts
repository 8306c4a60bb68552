import type { TokenCredential } from '@azure/identity';
import type { SecretClient } from '@azure/keyvault-secrets';
import type { RegistryEntry } from '../../registries/catalog.js';
import { AcrScopeMapProvider } from './acrScopeMap.js';
import { DockerHubOatProvider } from './dockerHubOat.js';
import type { LoginProvider } from './provider.js';

/** One provider per catalog entry with a `login` object, built once: Hub sessions are kept per provider. */
export function loginProviders(entries: RegistryEntry[], secrets: SecretClient, identity: TokenCredential): Map<string, LoginProvider> {
  const providers = new Map<string, LoginProvider>();
  for (const entry of entries) {
    if (entry.login?.provider === 'dockerhub-oat') providers.set(entry.host, new DockerHubOatProvider(entry.login, secrets, entry.timeoutMs));
    if (entry.login?.provider === 'acr-scope-map') providers.set(entry.host, new AcrScopeMapProvider(entry.login, identity, entry.timeoutMs));
  }
  return providers;
}
