/** Matches a request path against a Functions route template such as `v1/admin/grants/{id}`. */
export function matchRoute(template: string, path: string): Record<string, string> | undefined {
  const expected = template.split('/');
  const actual = path.split('/');
  if (expected.length !== actual.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < expected.length; i++) {
    const want = expected[i]!;
    const got = actual[i]!;
    if (want.startsWith('{') && want.endsWith('}')) {
      if (got.length === 0) return undefined;
      try {
        params[want.slice(1, -1)] = decodeURIComponent(got);
      } catch {
        return undefined;
      }
    } else if (want.toLowerCase() !== got.toLowerCase()) {
      return undefined;
    }
  }
  return params;
}
