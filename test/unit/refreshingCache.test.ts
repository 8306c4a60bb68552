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
