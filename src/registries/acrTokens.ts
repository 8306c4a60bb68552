import type { TokenCredential } from '@azure/identity';
import * as z from 'zod';
import { errors, UpstreamRefused } from '../errors.js';
import type { RegistryEntry } from './catalog.js';
import { formatScope, type RepositoryScope } from './scope.js';
import { tokenEndpointAnswer, upstreamFetch } from '../http/upstreamHttp.js';
import { jwtExpiry, type UpstreamToken } from './upstreamTokens.js';

/** The Entra resource ACR accepts at /oauth2/exchange. */
export const ACR_SCOPE = 'https://containerregistry.azure.net/.default';
/** Refresh tokens are used until this long before they expire. */
const REFRESH_MARGIN_MS = 5 * 60_000;
/** When an ACR token carries no readable `exp`: ACR documents 3 h refresh and 75 min access tokens; assume less. */
const FALLBACK_LIFETIME_MS = 10 * 60_000;

const refreshSchema = z.object({ refresh_token: z.string().min(1).max(65_536) });
const accessSchema = z.object({ access_token: z.string().min(1).max(65_536) });

interface RefreshToken {
  token: string;
  useUntil: number;
}

/**
 * Azure Container Registry has no stored secret: the broker's own managed identity gets an Entra
 * token for ACR, exchanges it at `/oauth2/exchange` for a refresh token (cached until shortly before
 * it expires), and trades that at `/oauth2/token` for an access token of exactly the granted scope.
 */
export class AcrTokenClient {
  private readonly refreshTokens = new Map<string, RefreshToken>();
  private readonly exchanging = new Map<string, Promise<RefreshToken>>();

  constructor(
    private readonly identity: TokenCredential,
    private readonly tenantId: string,
  ) {}

  async mint(entry: RegistryEntry, scopes: RepositoryScope[]): Promise<UpstreamToken> {
    const deadline = Date.now() + entry.timeoutMs;
    const cached = this.refreshTokens.get(entry.host);
    try {
      return await this.accessToken(entry, scopes, await this.refreshToken(entry, deadline), deadline);
    } catch (error) {
      // A cached refresh token the registry no longer takes (revoked, expired early) is worth one fresh
      // exchange within the same request; a just-exchanged one that is refused is a real refusal.
      if (!(cached && error instanceof UpstreamRefused)) throw error;
      return this.accessToken(entry, scopes, await this.refreshToken(entry, deadline), deadline);
    }
  }

  private async accessToken(entry: RegistryEntry, scopes: RepositoryScope[], refresh: RefreshToken, deadline: number): Promise<UpstreamToken> {
    const form = new URLSearchParams({
      grant_type: 'refresh_token',
      service: entry.host,
      scope: scopes.map(formatScope).join(' '),
      refresh_token: refresh.token,
    });
    const requestedAt = Date.now();
    // Minting a token changes nothing at the registry: safe to repeat.
    const response = await upstreamFetch({ url: `${entry.baseUrl}/oauth2/token`, form, deadline, registry: entry.host, idempotent: true });
    const answer = await tokenEndpointAnswer(response, entry.host, {
      refused: (status) => {
        // A refused refresh token is no use any more: the next attempt exchanges afresh.
        if (this.refreshTokens.get(entry.host) === refresh) this.refreshTokens.delete(entry.host);
        return `${entry.host} refused the broker's ACR refresh token at /oauth2/token (HTTP ${status}).`;
      },
      broken: (status) => `${entry.host} answered HTTP ${status} at /oauth2/token.`,
    });
    const parsed = accessSchema.safeParse(answer);
    if (!parsed.success) throw errors.upstreamBroken(`${entry.host} gave no access token.`);
    const token = parsed.data.access_token;
    return { token, expiresAt: new Date(jwtExpiry(token) ?? requestedAt + FALLBACK_LIFETIME_MS) };
  }

  private async refreshToken(entry: RegistryEntry, deadline: number): Promise<RefreshToken> {
    const cached = this.refreshTokens.get(entry.host);
    if (cached && Date.now() < cached.useUntil) return cached;
    let pending = this.exchanging.get(entry.host);
    if (!pending) {
      pending = this.exchange(entry, deadline).finally(() => this.exchanging.delete(entry.host));
      this.exchanging.set(entry.host, pending);
    }
    return pending;
  }

  private async exchange(entry: RegistryEntry, deadline: number): Promise<RefreshToken> {
    let entraToken: string;
    try {
      const accessToken = await this.identity.getToken(ACR_SCOPE, { abortSignal: AbortSignal.timeout(Math.max(1, deadline - Date.now())) });
      if (!accessToken) throw new Error('no token');
      entraToken = accessToken.token;
    } catch {
      throw errors.dependencyDown('managed-identity', "The broker's managed identity could not get an Entra token for ACR.");
    }
    const form = new URLSearchParams({ grant_type: 'access_token', service: entry.host, tenant: this.tenantId, access_token: entraToken });
    const response = await upstreamFetch({ url: `${entry.baseUrl}/oauth2/exchange`, form, deadline, registry: entry.host, idempotent: true });
    const answer = await tokenEndpointAnswer(response, entry.host, {
      refused: (status) =>
        `${entry.host} refused the broker's Entra token at /oauth2/exchange (HTTP ${status}): check that the broker's identity has a role on the registry and that the token is for ${ACR_SCOPE.replace('/.default', '')}.`,
      broken: (status) => `${entry.host} answered HTTP ${status} at /oauth2/exchange.`,
    });
    const parsed = refreshSchema.safeParse(answer);
    if (!parsed.success) throw errors.upstreamBroken(`${entry.host} gave no refresh token.`);
    const token = parsed.data.refresh_token;
    const expiresAt = jwtExpiry(token) ?? Date.now() + FALLBACK_LIFETIME_MS;
    const refresh = { token, useUntil: expiresAt - REFRESH_MARGIN_MS };
    this.refreshTokens.set(entry.host, refresh);
    return refresh;
  }
}
