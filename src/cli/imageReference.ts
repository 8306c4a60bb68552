import { isRepositoryName } from '../registries/scope.js';

/**
 * Registry names as clients hand them over: docker's server URL (`https://index.docker.io/v1/`,
 * `myreg.azurecr.io`) and the kubelet's image (`nginx`, `acme/web:1`, `host:5000/a/b@sha256:…`),
 * mapped to the host the broker's catalog knows.
 */
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

export function canonicalRegistry(host: string): string {
  const lower = host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(lower) ? 'docker.io' : lower;
}

export function registryOfServerUrl(serverUrl: string): string {
  const host = serverUrl.trim().replace(/^[a-z]+:\/\//i, '').split('/')[0] ?? '';
  return canonicalRegistry(host);
}

export interface ImageReference {
  /** The host as the image names it (docker.io when it names none): the kubelet matches on it. */
  host: string;
  /** The host the broker knows. */
  registry: string;
  repository: string;
}

/** Docker's rule: the first component is a host when it has a "." or ":" or is localhost. */
export function parseImage(image: string): ImageReference | undefined {
  const name = image.split('@')[0]!.replace(/:[\w][\w.-]{0,127}$/, '');
  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  const named = first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost');
  const host = named ? first.toLowerCase() : 'docker.io';
  let repository = named ? name.slice(slash + 1) : name;
  const registry = canonicalRegistry(host);
  if (registry === 'docker.io' && !repository.includes('/')) repository = `library/${repository}`;
  return isRepositoryName(repository) ? { host, registry, repository } : undefined;
}
