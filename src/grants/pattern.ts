/**
 * Repository patterns in grants: `*` matches within one path segment; a `**` segment matches any
 * number of segments, except at the end, where it matches one or more: `team/**` covers
 * `team/web` and `team/a/b` but not `team` itself (grant `team` too for that). Matching walks the strings directly; no regular expression
 * is ever built from a pattern, so a hostile pattern cannot cause catastrophic backtracking.
 */
const SEGMENT = /^[a-z0-9._*-]+$/;

export function isRepositoryPattern(pattern: string): boolean {
  if (pattern.length === 0 || pattern.length > 255) return false;
  return pattern.split('/').every((segment) => segment === '**' || (SEGMENT.test(segment) && !segment.includes('**')));
}

/** `*` within one segment; classic linear-time glob with a single backtrack point. */
function matchSegment(glob: string, text: string): boolean {
  let g = 0;
  let t = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    if (g < glob.length && glob[g] === '*') {
      star = g++;
      resume = t;
    } else if (g < glob.length && glob[g] === text[t]) {
      g++;
      t++;
    } else if (star !== -1) {
      g = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (g < glob.length && glob[g] === '*') g++;
  return g === glob.length;
}

/** Dynamic programming over (pattern segment, name segment): O(p·n), whatever the pattern. */
export function matchesRepository(pattern: string, repository: string): boolean {
  const p = pattern.split('/');
  const n = repository.split('/');
  // reachable[j]: the first i pattern segments can match the first j name segments. Two rows, swapped
  // per pattern segment: this runs for every grant a request could use.
  let reachable: boolean[] = new Array<boolean>(n.length + 1).fill(false);
  let next: boolean[] = new Array<boolean>(n.length + 1);
  reachable[0] = true;
  for (let i = 0; i < p.length; i++) {
    const segment = p[i]!;
    const trailing = i === p.length - 1;
    next[0] = segment === '**' && !trailing && reachable[0]!;
    for (let j = 1; j <= n.length; j++) {
      next[j] = segment === '**' ? (!trailing && reachable[j]!) || reachable[j - 1]! || next[j - 1]! : reachable[j - 1]! && matchSegment(segment, n[j - 1]!);
    }
    [reachable, next] = [next, reachable];
  }
  return reachable[n.length]!;
}
