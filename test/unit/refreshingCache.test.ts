import { describe, expect, it } from 'vitest';
import { RefreshingCache } from '../../src/refreshingCache.js';

function clock() {
  let now = 0;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('RefreshingCache', () => {
  it('shares one load among concurrent readers', async () => {
    let loads = 0;
    const cache = new RefreshingCache<string, number>({ ttlMs: 1000, staleMs: 0, load: async () => ++loads });
    const values = await Promise.all(Array.from({ length: 10 }, () => cache.get('k')));
    expect(values).toEqual(Array(10).fill(1));
    expect(loads).toBe(1);
  });

  it('reloads after the TTL', async () => {
    const time = clock();
    let loads = 0;
    const cache = new RefreshingCache<string, number>({ ttlMs: 1000, staleMs: 0, load: async () => ++loads, now: time.now });
    await cache.get('k');
    time.advance(999);
    expect(await cache.get('k')).toBe(1);
    time.advance(2);
    expect(await cache.get('k')).toBe(2);
  });

  it('serves a stale value while loads fail, only within the stale window', async () => {
    const time = clock();
    let fail = false;
    const cache = new RefreshingCache<string, string>({
      ttlMs: 1000,
      staleMs: 5000,
      now: time.now,
      load: async () => {
        if (fail) throw new Error('down');
        return 'value';
      },
    });
    await cache.get('k');
    fail = true;
    time.advance(4000);
    expect(await cache.get('k')).toBe('value');
    time.advance(2001);
    await expect(cache.get('k')).rejects.toThrow('down');
  });

  it('drops the value on a definitive failure instead of serving it stale', async () => {
    const time = clock();
    let fail = false;
    const cache = new RefreshingCache<string, string>({
      ttlMs: 1000,
      staleMs: 60_000,
      now: time.now,
      serveStaleOn: (error) => (error as Error).message !== 'gone',
      load: async () => {
        if (fail) throw new Error('gone');
        return 'value';
      },
    });
    await cache.get('k');
    fail = true;
    time.advance(1001);
    await expect(cache.get('k')).rejects.toThrow('gone');
  });

  it('does not store a load that began before an invalidation', async () => {
    let release!: (value: string) => void;
    let calls = 0;
    const cache = new RefreshingCache<string, string>({
      ttlMs: 60_000,
      staleMs: 0,
      load: () => {
        calls += 1;
        return calls === 1 ? new Promise((resolve) => (release = resolve)) : Promise.resolve('after');
      },
    });
    const first = cache.get('k');
    cache.invalidate('k');
    release('before');
    expect(await first).toBe('before');
    expect(await cache.get('k')).toBe('after');
  });

  it('counts a value\'s age from when its load started, so a slow load cannot stretch the promise', async () => {
    // Grants and blocks promise 30 s (TTL 15 + stale 15). A reload that starts at 15 s and takes 20 s
    // read the table at 15 s at best: at 46 s its value is 31 s old and must not be served.
    const time = clock();
    let calls = 0;
    const cache = new RefreshingCache<string, string>({
      ttlMs: 15_000,
      staleMs: 15_000,
      now: time.now,
      load: async () => {
        calls += 1;
        if (calls === 2) {
          time.advance(20_000);
          return 'slow';
        }
        if (calls > 2) throw new Error('down');
        return 'first';
      },
    });
    expect(await cache.get('k')).toBe('first');
    time.advance(15_000);
    expect(await cache.get('k')).toBe('slow');
    expect(await cache.get('k')).toBe('slow');
    time.advance(11_000);
    await expect(cache.get('k')).rejects.toThrow('down');
  });

  it('gives up on a hung load at its deadline: stale value within the window, an error after it', async () => {
    const time = clock();
    let calls = 0;
    const signals: (AbortSignal | undefined)[] = [];
    const cache = new RefreshingCache<string, string>({
      ttlMs: 1000,
      staleMs: 5000,
      timeoutMs: 50,
      now: time.now,
      load: (_key, signal) => {
        calls += 1;
        signals.push(signal);
        return calls === 1 ? Promise.resolve('value') : new Promise<string>(() => undefined);
      },
    });
    expect(await cache.get('k')).toBe('value');
    time.advance(2000);
    const started = Date.now();
    expect(await cache.get('k')).toBe('value');
    expect(Date.now() - started).toBeLessThan(1000);
    expect(signals[1]?.aborted).toBe(true);
    time.advance(5000);
    await expect(cache.get('k')).rejects.toThrow(/did not finish within 50 ms/);
  });

  it('stops a reader waiting at waitMs, but keeps what the slow load reads for the next one', async () => {
    let release!: (value: string) => void;
    const cache = new RefreshingCache<string, string>({
      ttlMs: 60_000,
      staleMs: 0,
      timeoutMs: 10_000,
      waitMs: 50,
      load: () => new Promise((resolve) => (release = resolve)),
    });
    const started = Date.now();
    await expect(cache.get('k')).rejects.toThrow(/did not finish within 50 ms/);
    expect(Date.now() - started).toBeLessThan(1000);
    release('slow but good');
    await new Promise((resolve) => setImmediate(resolve));
    expect(await cache.get('k')).toBe('slow but good');
  });

  it('waits only staleWaitMs for a reload when the stale value can answer, waitMs when nothing can', async () => {
    const time = clock();
    let calls = 0;
    const cache = new RefreshingCache<string, string>({
      ttlMs: 1000,
      staleMs: 5000,
      timeoutMs: 10_000,
      waitMs: 1500,
      staleWaitMs: 20,
      now: time.now,
      load: () => (++calls === 1 ? Promise.resolve('first') : new Promise<string>(() => undefined)),
    });
    await cache.get('k');
    time.advance(2000);
    let started = Date.now();
    expect(await cache.get('k')).toBe('first');
    // Far below waitMs even on a busy machine.
    expect(Date.now() - started).toBeLessThan(1000);
    time.advance(5000);
    started = Date.now();
    await expect(cache.get('k')).rejects.toThrow(/within 1500 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
  });
});

describe('CallerRateLimit', () => {
  it('allows a burst of perMinute, then refills at perMinute per minute, per caller', async () => {
    const { CallerRateLimit } = await import('../../src/issuance/callerRateLimit.js');
    const time = clock();
    const limit = new CallerRateLimit(6, time.now);
    for (let i = 0; i < 6; i++) expect(limit.take('a')).toEqual({ allowed: true });
    expect(limit.take('a')).toEqual({ allowed: false, retryAfterSeconds: 10 });
    expect(limit.take('b')).toEqual({ allowed: true });
    time.advance(10_000);
    expect(limit.take('a')).toEqual({ allowed: true });
    expect(limit.take('a').allowed).toBe(false);
  });
});
