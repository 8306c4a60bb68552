type Segment = { param: string } | { literal: string };

/** Matches request paths against a Functions route template such as `v1/admin/grants/{id}`; literal segments ignore case. */
export function routeMatcher(template: string): (path: string) => Record<string, string> | undefined {
  const expected: Segment[] = template
    .split('/')
    .map((part) => (part.startsWith('{') && part.endsWith('}') ? { param: part.slice(1, -1) } : { literal: part.toLowerCase() }));
  return (path) => {
    const actual = path.split('/');
    if (expected.length !== actual.length) return undefined;
    const params: Record<string, string> = {};
    for (let i = 0; i < expected.length; i++) {
      const want = expected[i]!;
      const got = actual[i]!;
      if ('literal' in want) {
        if (want.literal !== got.toLowerCase()) return undefined;
        continue;
      }
      if (got.length === 0) return undefined;
      try {
        params[want.param] = decodeURIComponent(got);
      } catch {
        return undefined;
      }
    }
    return params;
  };
}
