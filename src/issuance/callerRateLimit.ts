import { LRUCache } from 'lru-cache';

interface Bucket {
  tokens: number;
  refilledAt: number;
}

const ALLOWED = { allowed: true } as const;

/** Callers remembered per instance; the least recently seen are forgotten first (and start full). */
const MAX_CALLERS = 10_000;

/**
 * A token bucket per key (a caller identity, or a client address for failed authentications) and instance: `perMinute` requests a minute, in bursts of up to
 * as many. It keeps one misbehaving workload from spending everyone's Key Vault and registry quotas.
 */
export class CallerRateLimit {
  private readonly buckets = new LRUCache<string, Bucket>({ max: MAX_CALLERS });

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one request's worth; answers how many seconds to wait when there is none left. */
  take(caller: string): { allowed: true } | { allowed: false; retryAfterSeconds: number } {
    const now = this.now();
    let bucket = this.buckets.get(caller);
    if (!bucket) {
      bucket = { tokens: this.perMinute, refilledAt: now };
      this.buckets.set(caller, bucket);
    }
    // A clock that steps back must not turn into a refusal.
    const elapsed = Math.max(0, now - bucket.refilledAt);
    const refilled = Math.min(this.perMinute, bucket.tokens + (elapsed / 60_000) * this.perMinute);
    // Updated in place: the get above already made this caller the most recently seen.
    bucket.refilledAt = now;
    if (refilled < 1) {
      bucket.tokens = refilled;
      return { allowed: false, retryAfterSeconds: Math.ceil(((1 - refilled) * 60) / this.perMinute) };
    }
    bucket.tokens = refilled - 1;
    return ALLOWED;
  }
}
