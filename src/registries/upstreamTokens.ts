import { decodeJwt } from 'jose';
import { z } from 'zod';
import type { UpstreamCredential } from '../credentials/upstreamCredentials.js';
import { problems } from '../http/problem.js';
import { RefreshingCache } from '../refreshingCache.js';
import { isAllowedServiceUrl } from '../urlPolicy.js';
import type { Challenge, RegistryEntry } from './catalog.js';
import { formatScope, type RepositoryScope } from './scope.js';
import { tokenEndpointAnswer, upstreamFetch } from './upstreamHttp.js';
import { parseWwwAuthenticate } from './wwwAuthenticate.js';

export interface UpstreamToken {
  token: string;
  expiresAt: Date;
  /** Set once the token's `access` claim has been compared with what was asked (see upstreamScope.ts). */
  upstreamScope?: 'verified' | 'opaque';
}

/** The distribution token spec's default when a token server omits `expires_in`. */
const DEFAULT_LIFETIME_SECONDS = 60;
const CHALLENGE_TTL_MS = 60 * 60_000;

const tokenResponseSchema = z
  .object({
    token: z.string().min(1).max(65_536).optional(),
    access_token: z.string().min(1).max(65_536).optional(),
    expires_in: z.number().int().positive().optional(),
  })
  .refine((body) => body.token ?? body.access_token, 'no token in the answer');

/**
 * Mints registry bearer tokens the way docker/skopeo would (distribution token auth): find the realm
 * from the registry's `/v2/` challenge, then ask the realm for exactly the given scopes with the
 * stored credential. The token's lifetime is read from the answer, never assumed.
 */
export class UpstreamTokenMinter {
  private readonly challenges = new RefreshingCache<RegistryEntry, Challenge>({
    ttlMs: CHALLENGE_TTL_MS,
    staleMs: CHALLENGE_TTL_MS,
    load: (entry) => discoverChallenge(entry),
  });

  async mint(entry: RegistryEntry, credential: UpstreamCredential, scopes: RepositoryScope[]): Promise<UpstreamToken> {
    const deadline = Date.now() + entry.timeoutMs;
    const challenge = entry.knownChallenge ?? (await this.challenges.get(entry));
    const url = new URL(challenge.realm);
    url.searchParams.set('service', challenge.service);
    for (const scope of scopes) url.searchParams.append('scope', formatScope(scope));
    url.searchParams.set('account', credential.username);
    const requestedAt = Date.now();
    const response = await upstreamFetch({
      url: url.toString(),
      headers: { Authorization: `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString('base64')}`, Accept: 'application/json' },
      deadline,
      registry: entry.host,
    });
    const answer = await tokenEndpointAnswer(response, entry.host, {
      refused: (status) => `${entry.host} refused the broker's stored credential (HTTP ${status}).`,
      broken: (status) => `${entry.host}'s token service answered HTTP ${status}.`,
    });
    const parsed = tokenResponseSchema.safeParse(answer);
    if (!parsed.success) throw problems.upstreamBroken(`${entry.host}'s token service gave no usable token.`);
    const token = (parsed.data.token ?? parsed.data.access_token)!;
    const lifetimeMs = (parsed.data.expires_in ?? DEFAULT_LIFETIME_SECONDS) * 1000;
    return { token, expiresAt: new Date(Math.min(requestedAt + lifetimeMs, jwtExpiry(token) ?? Infinity)) };
  }
}

export function jwtExpiry(token: string): number | undefined {
  try {
    const { exp } = decodeJwt(token);
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

async function discoverChallenge(entry: RegistryEntry): Promise<Challenge> {
  const response = await upstreamFetch({ url: `${entry.baseUrl}/v2/`, deadline: Date.now() + entry.timeoutMs, registry: entry.host });
  await response.body?.cancel();
  const header = response.headers.get('www-authenticate');
  const challenge = response.status === 401 && header ? parseWwwAuthenticate(header) : undefined;
  const realm = challenge?.params.get('realm');
  const service = challenge?.params.get('service');
  if (challenge?.scheme !== 'bearer' || !realm || service === undefined) {
    throw problems.upstreamBroken(`${entry.host} does not use bearer token authentication.`);
  }
  // The broker sends the stored credential to the realm: never to a plain-http remote host.
  if (!isAllowedServiceUrl(realm)) throw problems.upstreamBroken(`${entry.host} names a token realm the broker will not use.`);
  return { realm, service };
}
