import { readFileSync } from 'node:fs';

/** Set by the bundle build (src/cli/bundle.ts); unset when run from a checkout or dist/. */
declare const REGISTRY_BROKER_VERSION: string | undefined;

export function version(): string {
  if (typeof REGISTRY_BROKER_VERSION === 'string') return REGISTRY_BROKER_VERSION;
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
