import { decodeTime, isValid } from 'ulid';
import { describe, expect, it } from 'vitest';
import { ulid } from '../../src/ids.js';

describe('ulid from the pooled generator', () => {
  it('makes valid, distinct ULIDs stamped with the current time, across pool refills', () => {
    const before = Date.now();
    const ids = Array.from({ length: 5000 }, () => ulid());
    const after = Date.now();
    expect(ids.every(isValid)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of [ids[0]!, ids.at(-1)!]) {
      expect(decodeTime(id)).toBeGreaterThanOrEqual(before);
      expect(decodeTime(id)).toBeLessThanOrEqual(after);
    }
  });

  it('uses every one of the 32 characters in the random part, none far more often than the others', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 2000; i++) for (const char of ulid().slice(10)) counts.set(char, (counts.get(char) ?? 0) + 1);
    expect(counts.size).toBe(32);
    // 32,000 draws: each character expects 1,000; a biased mapping would be far off.
    for (const count of counts.values()) expect(Math.abs(count - 1000)).toBeLessThan(200);
  });
});
