import { randomFillSync } from 'node:crypto';
import { ulid as ulidWith } from 'ulid';

/**
 * ULIDs from a pooled random buffer. The ulid package's own generator calls `getRandomValues` once
 * per character (16 per id); here one fill serves 256 ids, each random character one pool byte.
 */
const POOL = new Uint8Array(4096);
let offset = POOL.length;

function pooledRandom(): number {
  if (offset === POOL.length) {
    randomFillSync(POOL);
    offset = 0;
  }
  // A byte over 256 is uniform in [0, 1), and ulid takes 32 equal slices of it: 8 byte values each.
  return POOL[offset++]! / 256;
}

export function ulid(): string {
  return ulidWith(Date.now(), pooledRandom);
}
