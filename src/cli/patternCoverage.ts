/**
 * Whether a grant's repository pattern can match any repository name at all. A pattern such as
 * `acme/web-` or `acme/*.` passes the pattern syntax but no OCI name has such a segment, so the
 * grant would silently grant nothing. Decided exactly: each segment glob is run against the
 * automaton of the OCI name component `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
 */
type State = 'start' | 'alnum' | 'dot' | 'underscore' | 'two-underscores' | 'dashes';

/** One letter of each class the automaton tells apart; digits behave as letters. */
const ALPHABET = ['a', '.', '_', '-'] as const;

function step(state: State, char: string): State | undefined {
  if (/[a-z0-9]/.test(char)) return 'alnum';
  if (char === '.') return state === 'alnum' ? 'dot' : undefined;
  if (char === '_') return state === 'alnum' ? 'underscore' : state === 'underscore' ? 'two-underscores' : undefined;
  if (char === '-') return state === 'alnum' || state === 'dashes' ? 'dashes' : undefined;
  return undefined;
}

/** Breadth-first over (position in the glob, automaton state); `*` stays or moves on without a letter. */
function segmentCanMatch(glob: string): boolean {
  const seen = new Set<string>();
  const queue: [number, State][] = [[0, 'start']];
  while (queue.length > 0) {
    const [at, state] = queue.pop()!;
    const key = `${at}:${state}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (at === glob.length) {
      if (state === 'alnum') return true;
      continue;
    }
    const char = glob[at]!;
    if (char === '*') {
      queue.push([at + 1, state]);
      for (const letter of ALPHABET) {
        const next = step(state, letter);
        if (next !== undefined) queue.push([at, next]);
      }
    } else {
      const next = step(state, char);
      if (next !== undefined) queue.push([at + 1, next]);
    }
  }
  return false;
}

/** The first segment no repository name can have, or undefined when the pattern can match. */
export function unmatchableSegment(pattern: string): string | undefined {
  return pattern.split('/').find((segment) => segment !== '**' && !segmentCanMatch(segment));
}
