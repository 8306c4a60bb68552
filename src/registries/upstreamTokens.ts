import { decodeJwt } from 'jose';
import * as z from 'zod';
import type { UpstreamCredential } from '../credentials/upstreamCredentials.js';
import { BrokerError, errors } from '../errors.js';
import type { Logger } from '../logger.js';
import { RefreshingCache } from '../refreshingCache.js';
import { isAllowedServiceUrl } from '../urlPolicy.js';
import type { Challenge, RegistryEntry } from './catalog.js';
import { formatScope, type RepositoryScope } from './scope.js';
import { tokenEndpointAnswer, upstreamFetch } from '../http/upstreamHttp.js';
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
  private readonly challenges: RefreshingCache<RegistryEntry, Challenge>;
  /** The first realm each registry named: a registry that later names another is refused. */
  private readonly approved = new Map<string, Challenge>();

  constructor(
    private readonly log: Logger,
    options: { challengeTtlMs?: number } = {},
  ) {
    const ttlMs = options.challengeTtlMs ?? CHALLENGE_TTL_MS;
    this.challenges = new RefreshingCache({
      ttlMs,
      staleMs: ttlMs,
      load: (entry) => this.discover(entry),
      serveStaleOn: (error) => !(error instanceof BrokerError && error.code === 'realm-not-allowed'),
    });
  }

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
    if (!parsed.success) throw errors.upstreamBroken(`${entry.host}'s token service gave no usable token.`);
    const token = (parsed.data.token ?? parsed.data.access_token)!;
    const lifetimeMs = (parsed.data.expires_in ?? DEFAULT_LIFETIME_SECONDS) * 1000;
    return { token, expiresAt: new Date(Math.min(requestedAt + lifetimeMs, jwtExpiry(token) ?? Infinity)) };
  }

  /**
   * The stored credential goes only to a realm the operator approved (DESIGN.md "Token realms"): https
   * (or loopback), on the registry's own host or one of the entry's `realmHosts`, and the same realm
   * the registry named the first time. Anything else is refused before a credential is sent.
   */
  private async discover(entry: RegistryEntry): Promise<Challenge> {
    const challenge = await readChallenge(entry);
    const refuse = (why: string): never => {
      this.log.error('token realm not allowed', { registry: entry.host, realmHost: hostOf(challenge.realm), why });
      throw errors.realmNotAllowed(
        `${entry.host} named a token realm the broker will not send its credential to (${why}). An operator can pin the entry's realm or list the realm's host in realmHosts.`,
      );
    };
    if (!isAllowedServiceUrl(challenge.realm)) refuse('not https');
    if (!entry.realmHosts.includes(new URL(challenge.realm).hostname)) refuse(`host ${hostOf(challenge.realm)} is neither the registry's nor in realmHosts`);
    const first = this.approved.get(entry.host);
    if (first && (first.realm !== challenge.realm || first.service !== challenge.service)) refuse('the realm changed since the registry first named it');
    this.approved.set(entry.host, challenge);
    return challenge;
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'unparseable';
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

async function readChallenge(entry: RegistryEntry): Promise<Challenge> {
  const response = await upstreamFetch({ url: `${entry.baseUrl}/v2/`, deadline: Date.now() + entry.timeoutMs, registry: entry.host });
  await response.body?.cancel();
  const header = response.headers.get('www-authenticate');
  const challenge = response.status === 401 && header ? parseWwwAuthenticate(header) : undefined;
  const realm = challenge?.params.get('realm');
  const service = challenge?.params.get('service');
  if (challenge?.scheme !== 'bearer' || !realm || service === undefined) {
    throw errors.upstreamBroken(`${entry.host} does not use bearer token authentication.`);
  }
  return { realm, service };
}
