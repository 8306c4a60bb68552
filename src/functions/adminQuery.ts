import * as z from 'zod';
import { MAX_SEARCH_DAYS } from '../audit/partitioning.js';
import { decodeCursor } from '../audit/timeRangeQuery.js';

/** Query parameters shared by the admin searches: a time range of at most MAX_SEARCH_DAYS, a page size, a cursor. */
const DAY_MS = 86_400_000;

export const timeRangeFields = {
  from: z.iso.datetime({ offset: true }).optional().describe('start (inclusive), ISO 8601; default: 24 h before `to`'),
  to: z.iso.datetime({ offset: true }).optional().describe('end (inclusive), ISO 8601; default: now'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(500).optional().describe('nextCursor from the previous page'),
};

export function resolveRange(input: { from?: string; to?: string; cursor?: string }, ctx: z.RefinementCtx) {
  const to = input.to ? new Date(input.to) : new Date();
  const from = input.from ? new Date(input.from) : new Date(to.getTime() - DAY_MS);
  if (from > to) ctx.addIssue({ code: 'custom', path: ['from'], message: 'must not be after `to`' });
  if (to.getTime() - from.getTime() > MAX_SEARCH_DAYS * DAY_MS) ctx.addIssue({ code: 'custom', path: ['from'], message: `the range may span at most ${MAX_SEARCH_DAYS} days` });
  const cursor = input.cursor === undefined ? undefined : decodeCursor(input.cursor);
  if (input.cursor !== undefined && !cursor) ctx.addIssue({ code: 'custom', path: ['cursor'], message: 'is not a cursor this API returned' });
  return { from, to, cursor };
}
