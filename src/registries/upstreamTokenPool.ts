import { LRUCache } from 'lru-cache';
import { formatScope, type RepositoryScope } from './scope.js';
import type { UpstreamToken } from './upstreamTokens.js';

export interface PooledToken extends UpstreamToken {
  reused: boolean;
}

interface Entry {
  token: UpstreamToken;
  reuseUntil: number;
}

/** Distinct (registry, credential, scope set) keys kept; callers choose scopes, so it is bounded. */
const MAX_ENTRIES = 5000;
/** A token is handed out again only while more than this share of its lifetime remains. */
const REUSE_FRACTION = 0.5;

/**
 * Reuses an upstream token for the same registry, credential and exact scope set while most of its
 * lifetime remains, and lets concurrent identical requests share one mint. Docker Hub and others
 * rate-limit their token endpoints; every caller still gets its own audit record.
 */
export class UpstreamTokenPool {
  private readonly tokens = new LRUCache<string, Entry>({ max: MAX_ENTRIES });
  private readonly inflight = new Map<string, Promise<UpstreamToken>>();

  /** `credential` names what the token was minted with (a Key Vault version), so a rotation never reuses. */
  async get(registry: string, credential: string, scopes: RepositoryScope[], mint: () => Promise<UpstreamToken>): Promise<PooledToken> {
    const key = `${registry}\n${credential}\n${scopes.map(formatScope).join(' ')}`;
    const cached = this.tokens.get(key);
    if (cached && Date.now() < cached.reuseUntil) return { ...cached.token, reused: true };
    const pending = this.inflight.get(key);
    if (pending) return { ...(await pending), reused: true };
    const requestedAt = Date.now();
    const minting = mint().finally(() => this.inflight.delete(key));
    this.inflight.set(key, minting);
    const token = await minting;
    const lifetime = token.expiresAt.getTime() - requestedAt;
    this.tokens.set(key, { token, reuseUntil: requestedAt + lifetime * REUSE_FRACTION });
    return { ...token, reused: false };
  }
}
