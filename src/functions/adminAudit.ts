import * as z from 'zod';
import { ADMIN_ERRORS, adminCaller } from './adminAccess.js';
import { adminAuditEntrySchema } from '../audit/adminAudit.js';
import { asJsonShape } from '../audit/entityCodec.js';
import { parseQuery } from '../http/body.js';
import { json } from '../http/dispatch.js';
import type { Handler, Route } from '../http/types.js';
import type { Services } from '../services.js';
import { resolveRange, timeRangeFields } from './adminQuery.js';

/** GET /v1/admin/audit: every admin action — who, what, before and after, when — newest first. */
const auditQueryFields = z.strictObject(timeRangeFields);
const auditQuerySchema = auditQueryFields.transform((query, ctx) => ({ ...query, ...resolveRange(query, ctx) }));

const entrySchema = asJsonShape(adminAuditEntrySchema);

const search: Handler<Services> = async (request, { services }) => {
  await adminCaller(request, services);
  const query = parseQuery(request.url, auditQuerySchema);
  const page = await services.adminAudit.search(query);
  return json(200, page);
};

export const adminAuditRoute: Route<Services> = {
  name: 'adminAudit',
  route: 'v1/admin/audit',
  operations: {
    GET: {
      summary: 'Read the admin audit: grant, block and rotation actions with who, what, before/after, when',
      access: 'admin',
      query: auditQueryFields,
      responses: {
        200: { description: 'A page of entries', schema: z.object({ entries: z.array(entrySchema), nextCursor: z.string().optional() }) },
        400: { description: 'A bad parameter or a range over 31 days' },
        ...ADMIN_ERRORS,
        503: { description: 'The admin audit table is unavailable' },
      },
      handler: search,
    },
  },
};
