import { describe, expect, it } from 'vitest';
import { VerifiedTokenCache, type SigningKeys } from '../../src/auth/verifiedTokenCache.js';

function clock(start = 1_000_000_000_000) {
  let now = start;
  return { now: () => now, set: (ms: number) => (now = ms) };
}

function keySet(...kids: string[]): SigningKeys & { withdraw(kid: string): void; publish(kid: string): void } {
  const published = new Set(kids);
  return { holds: (kid) => published.has(kid), withdraw: (kid) => published.delete(kid), publish: (kid) => published.add(kid) };
}

describe('VerifiedTokenCache', () => {
  it('answers for the same token under the same policy only', () => {
    const time = clock();
    const cache = new VerifiedTokenCache<string>({ maxEntries: 10, now: time.now });
    cache.set('token-a', 'app', { value: 'caller-a', expiresAt: time.now() / 1000 + 60, kid: 'k1', keys: keySet('k1') });
    expect(cache.get('token-a', 'app')).toBe('caller-a');
    expect(cache.get('token-a', 'delegated')).toBeUndefined();
    expect(cache.get('token-b', 'app')).toBeUndefined();
  });

  it('never answers for a token past its exp, not even by a millisecond', () => {
    const time = clock();
    const cache = new VerifiedTokenCache<string>({ maxEntries: 10, now: time.now });
    const exp = time.now() / 1000 + 60;
    cache.set('token', 'app', { value: 'caller', expiresAt: exp, kid: 'k1', keys: keySet('k1') });
    time.set(exp * 1000 - 1);
    expect(cache.get('token', 'app')).toBe('caller');
    time.set(exp * 1000);
    expect(cache.get('token', 'app')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('does not store a token that is already past its exp', () => {
    const time = clock();
    const cache = new VerifiedTokenCache<string>({ maxEntries: 10, now: time.now });
    cache.set('token', 'app', { value: 'caller', expiresAt: time.now() / 1000 - 1, kid: 'k1', keys: keySet('k1') });
    expect(cache.size).toBe(0);
  });

  it('drops a token once its kid leaves the key set, and does not bring it back when the kid returns', () => {
    const time = clock();
    const keys = keySet('k1', 'k2');
    const cache = new VerifiedTokenCache<string>({ maxEntries: 10, now: time.now });
    cache.set('signed-by-k1', 'app', { value: 'one', expiresAt: time.now() / 1000 + 3600, kid: 'k1', keys });
    cache.set('signed-by-k2', 'app', { value: 'two', expiresAt: time.now() / 1000 + 3600, kid: 'k2', keys });
    keys.withdraw('k1');
    expect(cache.get('signed-by-k1', 'app')).toBeUndefined();
    expect(cache.get('signed-by-k2', 'app')).toBe('two');
    keys.publish('k1');
    expect(cache.get('signed-by-k1', 'app')).toBeUndefined();
  });

  it('holds at most maxEntries, evicting the least recently used', () => {
    const time = clock();
    const keys = keySet('k1');
    const cache = new VerifiedTokenCache<number>({ maxEntries: 100, now: time.now });
    cache.set('token-0', 'app', { value: 0, expiresAt: time.now() / 1000 + 3600, kid: 'k1', keys });
    for (let i = 1; i < 5000; i++) {
      cache.set(`token-${i}`, 'app', { value: i, expiresAt: time.now() / 1000 + 3600, kid: 'k1', keys });
      if (i % 10 === 0) cache.get('token-0', 'app');
    }
    expect(cache.size).toBe(100);
    expect(cache.get('token-0', 'app')).toBe(0);
    expect(cache.get('token-1', 'app')).toBeUndefined();
    expect(cache.get('token-4999', 'app')).toBe(4999);
  });
});
