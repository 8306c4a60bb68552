import { createRemoteJWKSet, customFetch, type RemoteJWKSet } from 'jose';
import * as z from 'zod';
import { errors } from '../errors.js';
import { RefreshingCache } from '../refreshingCache.js';
import type { SigningKeys } from './verifiedTokenCache.js';
import { outboundFetch } from '../http/outboundFetch.js';
import { isAllowedServiceUrl } from '../urlPolicy.js';

export type TokenVersion = '1.0' | '2.0';

export interface IssuerKeys extends SigningKeys {
  version: TokenVersion;
  issuer: string;
  keys: RemoteJWKSet;
}

interface TrackedKeySet extends SigningKeys {
  keys: RemoteJWKSet;
}

const metadataSchema = z.object({
  issuer: z.string().min(1),
  jwks_uri: z.string().refine(isAllowedServiceUrl, 'jwks_uri must be https'),
});

const METADATA_TTL_MS = 24 * 60 * 60 * 1000;
/** Metadata, then keys, one after the other: both inside the 5 s a request may wait for Entra. */
const FETCH_TIMEOUT_MS = 2000;
/** jose refetches the key set on an unknown `kid` at most this often, so junk `kid`s cannot hammer Entra. */
const JWKS_COOLDOWN_MS = 30_000;
const JWKS_MAX_AGE_MS = 10 * 60 * 1000;

/**
 * Entra's OIDC metadata for one tenant, v1 and v2. Each document names its issuer and key set; the
 * broker accepts exactly those issuers, and verifies each with the keys its own document names.
 */
export class OpenIdMetadata {
  private readonly documents: RefreshingCache<TokenVersion, IssuerKeys>;
  private readonly keySets = new Map<string, TrackedKeySet>();

  constructor(authorityHost: string, tenantId: string) {
    const urls: Record<TokenVersion, string> = {
      '1.0': `${authorityHost}/${tenantId}/.well-known/openid-configuration`,
      '2.0': `${authorityHost}/${tenantId}/v2.0/.well-known/openid-configuration`,
    };
    this.documents = new RefreshingCache({
      ttlMs: METADATA_TTL_MS,
      staleMs: METADATA_TTL_MS,
      load: async (version) => {
        const document = await fetchMetadata(urls[version]);
        const tracked = this.keySet(document.jwks_uri);
        return { version, issuer: document.issuer, keys: tracked.keys, holds: tracked.holds };
      },
    });
  }

  /** The metadata whose issuer is exactly `issuer`, or undefined when neither document declares it. */
  async forIssuer(issuer: string): Promise<IssuerKeys | undefined> {
    const all = await this.all();
    return all.find((candidate) => candidate.issuer === issuer);
  }

  async all(): Promise<IssuerKeys[]> {
    try {
      return await Promise.all([this.documents.get('1.0'), this.documents.get('2.0')]);
    } catch {
      throw errors.dependencyDown('identity-provider', 'The Entra ID metadata could not be read.');
    }
  }

  private keySet(jwksUri: string): TrackedKeySet {
    let tracked = this.keySets.get(jwksUri);
    if (!tracked) {
      // The kids of the key set as last fetched, read beside jose, so that a cached verification can be
      // re-checked without a signature check. Past JWKS_MAX_AGE_MS the set vouches for nothing until a
      // full verification has made jose fetch it again.
      let kids: ReadonlySet<string> = new Set();
      const keys = createRemoteJWKSet(new URL(jwksUri), {
        cooldownDuration: JWKS_COOLDOWN_MS,
        cacheMaxAge: JWKS_MAX_AGE_MS,
        timeoutDuration: FETCH_TIMEOUT_MS,
        [customFetch]: async (url, init) => {
          const response = await outboundFetch(url, init);
          if (response.status === 200) kids = kidsOf(await response.clone().json().catch(() => undefined));
          return response;
        },
      });
      tracked = { keys, holds: (kid) => keys.fresh && kids.has(kid) };
      this.keySets.set(jwksUri, tracked);
    }
    return tracked;
  }
}

function kidsOf(document: unknown): Set<string> {
  const keys = (document as { keys?: unknown } | undefined)?.keys;
  if (!Array.isArray(keys)) return new Set();
  return new Set(keys.map((key) => (key as { kid?: unknown }).kid).filter((kid): kid is string => typeof kid === 'string'));
}

async function fetchMetadata(url: string): Promise<z.infer<typeof metadataSchema>> {
  const response = await outboundFetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), redirect: 'error' });
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`metadata ${url} answered ${response.status}`);
  }
  return metadataSchema.parse(await response.json());
}
