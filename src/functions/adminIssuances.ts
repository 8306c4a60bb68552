import * as z from 'zod';
import { ADMIN_ERRORS, adminCaller } from './adminAccess.js';
import { asJsonShape } from '../audit/entityCodec.js';
import { issuanceRecordSchema, OUTCOMES } from '../audit/issuanceRecord.js';
import { parseQuery } from '../http/body.js';
import { json } from '../http/dispatch.js';
import type { Handler, Route } from '../http/types.js';
import { registryHostSchema } from '../registries/catalog.js';
import { isRepositoryName } from '../registries/scope.js';
import type { Services } from '../services.js';
import { resolveRange, timeRangeFields } from './adminQuery.js';

/** GET /v1/admin/issuances: the issuance audit, newest first, read only from the buckets in range. */
const issuanceQueryFields = z.strictObject({
  ...timeRangeFields,
  objectId: z.guid().transform((id) => id.toLowerCase()).optional(),
  registry: registryHostSchema.optional(),
  repository: z.string().refine(isRepositoryName, 'must be a repository name').optional(),
  outcome: z.enum(OUTCOMES).optional(),
});
export const issuanceQuerySchema = issuanceQueryFields.transform((query, ctx) => ({ ...query, ...resolveRange(query, ctx) }));

const issuanceSchema = asJsonShape(issuanceRecordSchema);

const search: Handler<Services> = async (request, { services }) => {
  await adminCaller(request, services);
  const query = parseQuery(request.url, issuanceQuerySchema);
  const page = await services.issuanceSearch.search(query);
  return json(200, page);
};

export const adminIssuancesRoute: Route<Services> = {
  name: 'adminIssuances',
  route: 'v1/admin/issuances',
  operations: {
    GET: {
      summary: 'Search the issuance audit: who got which scopes, when, with what outcome',
      description:
        'Query parameters: from, to (default the last 24 h, at most 31 days), objectId, registry, repository, outcome (issued|denied|failed), limit (≤ 1000, default 100), cursor. Newest first; a page may hold fewer than `limit` records and still have a nextCursor.',
      access: 'admin',
      query: issuanceQueryFields,
      responses: {
        200: { description: 'A page of records', schema: z.object({ issuances: z.array(issuanceSchema), nextCursor: z.string().optional() }) },
        400: { description: 'A bad parameter or a range over 31 days' },
        ...ADMIN_ERRORS,
        503: { description: 'The audit table is unavailable' },
      },
      handler: search,
    },
  },
};
