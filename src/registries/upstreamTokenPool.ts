import { LRUCache } from 'lru-cache';
import type { UpstreamCredential } from '../credentials/upstreamCredentials.js';
import type { RegistryEntry } from './catalog.js';
import { formatScope, type RepositoryScope } from './scope.js';
import type { UpstreamToken, UpstreamTokenMinter } from './upstreamTokens.js';

export interface PooledToken extends UpstreamToken {
  reused: boolean;
}

interface Entry {
  token: UpstreamToken;
  reuseUntil: number;
}

/** Distinct (registry, credential version, scope set) keys kept; callers choose scopes, so it is bounded. */
const MAX_ENTRIES = 5000;
/** A token is handed out again only while more than this share of its lifetime remains. */
const REUSE_FRACTION = 0.5;

/**
 * Reuses an upstream token for the same registry, credential version and exact scope set while most
 * of its lifetime remains, and lets concurrent identical requests share one mint. Docker Hub and
 * others rate-limit their token endpoints; every caller still gets its own audit record.
 */
export class UpstreamTokenPool {
  private readonly tokens = new LRUCache<string, Entry>({ max: MAX_ENTRIES });
  private readonly inflight = new Map<string, Promise<UpstreamToken>>();

  constructor(private readonly minter: UpstreamTokenMinter) {}

  async get(entry: RegistryEntry, credential: UpstreamCredential, scopes: RepositoryScope[]): Promise<PooledToken> {
    const key = `${entry.host}\n${credential.version}\n${scopes.map(formatScope).join(' ')}`;
    const cached = this.tokens.get(key);
    if (cached && Date.now() < cached.reuseUntil) return { ...cached.token, reused: true };
    let minting = this.inflight.get(key);
    if (!minting) {
      const requestedAt = Date.now();
      minting = this.minter.mint(entry, credential, scopes).finally(() => this.inflight.delete(key));
      this.inflight.set(key, minting);
      const token = await minting;
      const lifetime = token.expiresAt.getTime() - requestedAt;
      this.tokens.set(key, { token, reuseUntil: requestedAt + lifetime * REUSE_FRACTION });
      return { ...token, reused: false };
    }
    return { ...(await minting), reused: true };
  }
}
