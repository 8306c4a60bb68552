import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';

/** The key set a token was verified with, as it stands now. */
export interface SigningKeys {
  /** Whether `kid` is still published, in a key set fetched recently enough to vouch for it. */
  holds(kid: string): boolean;
}

/** What a full verification established about one token, and what must stay true to reuse it. */
export interface VerifiedToken<T> {
  value: T;
  /** The verified `exp` claim, seconds since the epoch. */
  expiresAt: number;
  /** The `kid` of the key whose signature was checked. */
  kid: string;
  keys: SigningKeys;
}

export interface VerifiedTokenCacheOptions {
  maxEntries: number;
  now?: () => number;
}

interface Entry<T> {
  value: T;
  expiresAtMs: number;
  kid: string;
  keys: SigningKeys;
}

/**
 * Identities of callers whose token was verified before, so that a repeat caller costs no signature
 * check. An entry is used only until the token's own `exp` (never past it: the clock-skew tolerance
 * of a full verification does not carry over) and only while the signing key is still published.
 * Keys are SHA-256 digests, so no token is kept in memory; the LRU bound caps memory whatever callers
 * send, and only successes are ever stored.
 */
export class VerifiedTokenCache<T> {
  private readonly entries: LRUCache<string, Entry<T>>;
  private readonly now: () => number;

  constructor(options: VerifiedTokenCacheOptions) {
    this.entries = new LRUCache({ max: options.maxEntries });
    this.now = options.now ?? Date.now;
  }

  /**
   * The value verified earlier for this exact token under the same `variant` (the policy it was
   * checked against), or undefined when it must be verified afresh.
   */
  get(token: string, variant: string): T | undefined {
    const key = digest(token, variant);
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (this.now() >= entry.expiresAtMs || !entry.keys.holds(entry.kid)) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Call only after a verification succeeded in full; a token already past its `exp` is not stored. */
  set(token: string, variant: string, verified: VerifiedToken<T>): void {
    const expiresAtMs = verified.expiresAt * 1000;
    if (!(expiresAtMs > this.now())) return;
    this.entries.set(digest(token, variant), { value: verified.value, expiresAtMs, kid: verified.kid, keys: verified.keys });
  }

  get size(): number {
    return this.entries.size;
  }
}

function digest(token: string, variant: string): string {
  return createHash('sha256').update(variant).update('\n').update(token).digest('base64url');
}
