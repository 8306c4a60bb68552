import * as z from 'zod';
import { ADMIN_ERRORS, adminCaller } from './adminAccess.js';
import { grantBodySchema, grantIdSchema, type Grant } from '../grants/model.js';
import type { StoredGrant } from '../grants/store.js';
import { parseBody } from '../http/body.js';
import { json } from '../http/dispatch.js';
import { errors } from '../errors.js';
import type { ApiRequest, Handler, Route } from '../http/types.js';
import type { Services } from '../services.js';

/**
 * Admin API for grants. Collection: GET (list), POST (create, 409 if the id exists).
 * Item: GET (with ETag), PUT (replace; If-Match required), DELETE (If-Match required).
 * Requiring If-Match on writes means two operators editing one grant can never lose an update.
 */
/** PUT may leave the id out of the body: the path names it. */
const grantReplaceSchema = grantBodySchema.extend({ id: grantBodySchema.shape.id.optional() });

function withEtag(stored: StoredGrant, status = 200, extra: Record<string, string> = {}) {
  return json(status, stored.grant, { ETag: stored.etag, ...extra });
}

/** One entity tag as GET sent it (`"…"` or `W/"…"`); `*` or a list would overwrite whatever is there now. */
const ENTITY_TAG = /^(?:W\/)?"[^"]*"$/;

function ifMatch(request: ApiRequest): string {
  const etag = request.headers.get('if-match')?.trim();
  if (!etag || !ENTITY_TAG.test(etag)) {
    throw errors.preconditionRequired('Send If-Match with the quoted ETag from GET (not *) so that concurrent edits are not lost.');
  }
  return etag;
}

function grantId(request: ApiRequest): string {
  const id = request.params.id ?? '';
  if (!grantIdSchema.safeParse(id).success) throw errors.notFound('grant-not-found', 'There is no grant with that id.');
  return id;
}

const list: Handler<Services> = async (request, { services }) => {
  await adminCaller(request, services);
  const grants = await services.grants.list();
  return json(200, { grants: grants.map((stored) => stored.grant) });
};

const create: Handler<Services> = async (request, { services, log }) => {
  const caller = await adminCaller(request, services);
  const grant: Grant = parseBody(await request.text(), grantBodySchema);
  const change = { requestId: request.requestId, actor: caller, action: 'grant.create' as const, target: grant.id, after: grant };
  const stored = await services.adminAudit.change(change, () => services.grants.create(grant));
  log.info('grant created', { grantId: grant.id, by: caller.objectId, requestId: request.requestId });
  return withEtag(stored, 201, { Location: `/api/v1/admin/grants/${grant.id}` });
};

const read: Handler<Services> = async (request, { services }) => {
  await adminCaller(request, services);
  return withEtag(await services.grants.get(grantId(request)));
};

const replace: Handler<Services> = async (request, { services, log }) => {
  const caller = await adminCaller(request, services);
  const id = grantId(request);
  const etag = ifMatch(request);
  const body = parseBody(await request.text(), grantReplaceSchema);
  if (body.id !== undefined && body.id !== id) throw errors.badRequest(`The body's id "${body.id}" does not match the path's "${id}".`);
  const before = (await services.grants.get(id)).grant;
  const after = { ...body, id };
  const change = { requestId: request.requestId, actor: caller, action: 'grant.update' as const, target: id, before, after };
  const stored = await services.adminAudit.change(change, () => services.grants.replace(after, etag, before));
  log.info('grant replaced', { grantId: id, by: caller.objectId, requestId: request.requestId });
  return withEtag(stored);
};

const remove: Handler<Services> = async (request, { services, log }) => {
  const caller = await adminCaller(request, services);
  const id = grantId(request);
  const etag = ifMatch(request);
  const before = (await services.grants.get(id)).grant;
  const change = { requestId: request.requestId, actor: caller, action: 'grant.delete' as const, target: id, before };
  await services.adminAudit.change(change, () => services.grants.delete(before, etag));
  log.info('grant deleted', { grantId: id, by: caller.objectId, requestId: request.requestId });
  return { status: 204 };
};

const grantListSchema = z.object({ grants: z.array(grantBodySchema) });
const ifMatchHeader = { 'If-Match': { description: 'The quoted ETag from GET (`*` is refused); required so that concurrent edits are never lost', required: true } };
const etag = { ETag: 'the grant version, for If-Match' };

const answers = { ...ADMIN_ERRORS, 503: { description: 'The grant store or the admin audit is unavailable' } };

export const adminGrantsRoute: Route<Services> = {
  name: 'adminGrants',
  route: 'v1/admin/grants',
  operations: {
    GET: {
      summary: 'List grants',
      access: 'admin',
      responses: { 200: { description: 'Every grant', schema: grantListSchema }, ...answers },
      handler: list,
    },
    POST: {
      summary: 'Create a grant',
      access: 'admin',
      requestBody: grantBodySchema,
      responses: {
        201: { description: 'Created', schema: grantBodySchema, headers: { ...etag, Location: 'the grant URL' } },
        400: { description: 'Invalid grant' },
        409: { description: 'A grant with this id exists' },
        ...answers,
      },
      handler: create,
    },
  },
};

export const adminGrantRoute: Route<Services> = {
  name: 'adminGrant',
  route: 'v1/admin/grants/{id}',
  operations: {
    GET: {
      summary: 'Read a grant',
      access: 'admin',
      responses: { 200: { description: 'The grant', schema: grantBodySchema, headers: etag }, 404: { description: 'No such grant' }, ...answers },
      handler: read,
    },
    PUT: {
      summary: 'Replace a grant (If-Match required)',
      access: 'admin',
      requestBody: grantReplaceSchema,
      headers: ifMatchHeader,
      responses: {
        200: { description: 'Replaced', schema: grantBodySchema, headers: etag },
        400: { description: 'Invalid grant' },
        404: { description: 'No such grant' },
        412: { description: 'The ETag is stale; nothing changed' },
        428: { description: 'If-Match is missing or not one quoted ETag' },
        ...answers,
      },
      handler: replace,
    },
    DELETE: {
      summary: 'Delete a grant (If-Match required)',
      access: 'admin',
      headers: ifMatchHeader,
      responses: {
        204: { description: 'Deleted' },
        404: { description: 'No such grant' },
        412: { description: 'The ETag is stale; nothing changed' },
        428: { description: 'If-Match is missing or not one quoted ETag' },
        ...answers,
      },
      handler: remove,
    },
  },
};
