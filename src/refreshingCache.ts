/**
 * A keyed cache for values loaded from a remote dependency (Key Vault secrets, grants, OIDC metadata).
 * - single-flight: concurrent misses for one key share one load;
 * - fresh for `ttlMs`, then reloaded on the next read;
 * - if a reload fails, the old value is served until it is `ttlMs + staleMs` old, so a short outage
 *   of the dependency does not become an outage of the broker, but a long one does;
 * - ages count from when a load *started*: what it read can be no newer than that, so a slow load
 *   never stretches how old a served value may be;
 * - with `waitMs`, a reader waits that long for a load, then takes the error, so nobody waits long
 *   on a hung dependency; with `staleWaitMs`, a reader that has a stale value to fall back on waits
 *   only that long before taking it. The load itself may go on (a big table is slow to read, and a
 *   cold instance has nothing else) until `timeoutMs`, when its signal aborts and it fails.
 * Keys come from configuration (catalog entries, tenants), so the key set is small and bounded.
 */
export interface RefreshingCacheOptions<K, V> {
  ttlMs: number;
  staleMs: number;
  load: (key: K, signal: AbortSignal | undefined) => Promise<V>;
  /** How long a load may take before it fails. */
  timeoutMs?: number;
  /** How long a reader waits for a load when nothing cached could answer instead. */
  waitMs?: number;
  /** How long a reader waits for a reload when the stale value could answer instead. */
  staleWaitMs?: number;
  /** Whether a failed load may fall back to the stale value; false for definitive answers ("deleted"). */
  serveStaleOn?: (error: unknown) => boolean;
  now?: () => number;
}

interface Entry<V> {
  value: V;
  loadedAt: number;
}

export class RefreshingCache<K, V> {
  private readonly entries = new Map<K, Entry<V>>();
  private readonly inflight = new Map<K, Promise<V>>();
  private readonly now: () => number;
  private generation = 0;

  constructor(private readonly options: RefreshingCacheOptions<K, V>) {
    this.now = options.now ?? Date.now;
  }

  async get(key: K): Promise<V> {
    const entry = this.entries.get(key);
    const age = entry ? this.now() - entry.loadedAt : Infinity;
    if (entry && age < this.options.ttlMs) return entry.value;
    const canServeStale = entry !== undefined && age < this.options.ttlMs + this.options.staleMs;
    try {
      return await this.waitFor(this.reload(key), canServeStale ? (this.options.staleWaitMs ?? this.options.waitMs) : this.options.waitMs);
    } catch (error) {
      const mayServeStale = this.options.serveStaleOn?.(error) ?? true;
      if (!mayServeStale) this.entries.delete(key);
      else if (canServeStale) return entry.value;
      throw error;
    }
  }

  /** Drops the cached value so the next read loads afresh (an admin write on this instance). */
  invalidate(key: K): void {
    this.generation += 1;
    this.entries.delete(key);
    this.inflight.delete(key);
  }

  private reload(key: K): Promise<V> {
    const pending = this.inflight.get(key);
    if (pending) return pending;
    // A load that started before an invalidate() must not store what it read before the write.
    const generation = this.generation;
    const startedAt = this.now();
    const loading = this.withDeadline(key)
      .then((value) => {
        if (generation === this.generation) this.entries.set(key, { value, loadedAt: startedAt });
        return value;
      })
      .finally(() => {
        if (this.inflight.get(key) === loading) this.inflight.delete(key);
      });
    this.inflight.set(key, loading);
    return loading;
  }

  private withDeadline(key: K): Promise<V> {
    const { timeoutMs } = this.options;
    if (timeoutMs === undefined) return this.options.load(key, undefined);
    const signal = AbortSignal.timeout(timeoutMs);
    // The signal is passed on, but a load that ignores it is not waited for either.
    return Promise.race([
      this.options.load(key, signal),
      new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(new LoadTimeout(timeoutMs)), { once: true })),
    ]);
  }

  private waitFor(loading: Promise<V>, waitMs: number | undefined): Promise<V> {
    if (waitMs === undefined) return loading;
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new LoadTimeout(waitMs)), waitMs);
    });
    return Promise.race([loading, waited]).finally(() => clearTimeout(timer));
  }
}

class LoadTimeout extends Error {
  constructor(ms: number) {
    super(`load did not finish within ${ms} ms`);
  }
}
