/**
 * Follows `nextCursor` to the end of the range: the broker stops a page after a bounded number of
 * hour buckets, so one page of `--since 7d` is not the answer. `limit` caps the rows (all without).
 */
export async function allPages<T>(
  fetchPage: (cursor: string | undefined, pageSize: number) => Promise<{ items: T[]; nextCursor?: string | undefined }>,
  limit?: number,
): Promise<{ items: T[]; nextCursor?: string }> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const pageSize = Math.min(1000, limit === undefined ? 1000 : limit - items.length);
    const page = await fetchPage(cursor, pageSize);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor && (limit === undefined || items.length < limit));
  return cursor ? { items, nextCursor: cursor } : { items };
}
