import * as z from 'zod';
import { ADMIN_ERRORS, adminCaller } from './adminAccess.js';
import type { Block } from '../grants/blocks.js';
import { parseBody } from '../http/body.js';
import { json } from '../http/dispatch.js';
import { errors } from '../errors.js';
import type { ApiRequest, Handler, Route } from '../http/types.js';
import type { Services } from '../services.js';

/**
 * Blocks: cut an identity off at once. The instance that takes the write denies the identity's next
 * request; every other instance within its 15 s cache. Blocks win over grants. The identity's login
 * credentials are deleted at their providers right after the block is stored; what cannot be deleted
 * now, or is made meanwhile by an instance that has not seen the block, the 30 s cleanup timer deletes.
 */
const blockBodySchema = z.strictObject({ reason: z.string().trim().min(1).max(500).describe('why; shown in the 403 the blocked identity gets') });
const blockSchema = z.object({ objectId: z.string(), reason: z.string(), blockedAt: z.string(), blockedBy: z.string() });

function objectId(request: ApiRequest): string {
  const parsed = z.guid().safeParse(request.params.objectId);
  if (!parsed.success) throw errors.badRequest('The path must name an identity by its object (principal) ID, a GUID.');
  return parsed.data.toLowerCase();
}

const list: Handler<Services> = async (request, { services }) => {
  await adminCaller(request, services);
  return json(200, { blocks: await services.blocks.list() });
};

const put: Handler<Services> = async (request, { services, log }) => {
  const caller = await adminCaller(request, services);
  const target = objectId(request);
  const { reason } = parseBody(await request.text(), blockBodySchema);
  const before = await services.blocks.find(target);
  const block: Block = { objectId: target, reason, blockedAt: new Date().toISOString(), blockedBy: caller.objectId };
  await services.adminAudit.change({ requestId: request.requestId, actor: caller, action: 'block.put', target, before, after: block }, () =>
    services.blocks.put(block),
  );
  const revoked = await services.logins.revokeFor(target).catch((error: unknown) => {
    log.warn('login credentials of a blocked identity not revoked yet; the cleanup timer retries', { objectId: target, error: error instanceof Error ? error.name : 'error' });
    return undefined;
  });
  if (revoked) log.info('login credentials of a blocked identity revoked', { objectId: target, deleted: revoked.deleted, failed: revoked.failed, requestId: request.requestId });
  return json(200, block);
};

const remove: Handler<Services> = async (request, { services }) => {
  const caller = await adminCaller(request, services);
  const target = objectId(request);
  const before = await services.blocks.find(target);
  await services.adminAudit.change({ requestId: request.requestId, actor: caller, action: 'block.delete', target, before }, () =>
    services.blocks.delete(target),
  );
  return { status: 204 };
};


const answers = { ...ADMIN_ERRORS, 503: { description: 'The block list or the admin audit is unavailable' } };

export const adminBlocksRoute: Route<Services> = {
  name: 'adminBlocks',
  route: 'v1/admin/blocks',
  operations: {
    GET: { summary: 'List blocked identities', access: 'admin', responses: { 200: { description: 'Every block', schema: z.object({ blocks: z.array(blockSchema) }) }, ...answers }, handler: list },
  },
};

export const adminBlockRoute: Route<Services> = {
  name: 'adminBlock',
  route: 'v1/admin/blocks/{objectId}',
  operations: {
    PUT: {
      summary: 'Block an identity: its next request is denied, whatever it was granted',
      access: 'admin',
      requestBody: blockBodySchema,
      responses: { 200: { description: 'Blocked', schema: blockSchema }, 400: { description: 'Not a GUID, or no reason' }, ...answers },
      handler: put,
    },
    DELETE: {
      summary: 'Unblock an identity',
      access: 'admin',
      responses: { 204: { description: 'Unblocked' }, 400: { description: 'Not a GUID' }, 404: { description: 'The identity is not blocked' }, ...answers },
      handler: remove,
    },
  },
};
