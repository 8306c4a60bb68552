import { requireAdmin } from '../auth/adminAccess.js';
import { grantBodySchema, grantIdSchema, type Grant } from '../grants/model.js';
import type { StoredGrant } from '../grants/store.js';
import { parseBody } from '../http/body.js';
import { json } from '../http/dispatch.js';
import { problems } from '../http/problem.js';
import type { ApiRequest, Handler, Route } from '../http/types.js';
import type { Services } from '../services.js';

/**
 * Admin API for grants. Collection: GET (list), POST (create, 409 if the id exists).
 * Item: GET (with ETag), PUT (replace; If-Match required), DELETE (If-Match required).
 * Requiring If-Match on writes means two operators editing one grant can never lose an update.
 */
async function admin(request: ApiRequest, services: Services) {
  return requireAdmin(services.callerTokens, request.headers.get('authorization'), services.config.adminRole);
}

function withEtag(stored: StoredGrant, status = 200, extra: Record<string, string> = {}) {
  return json(status, stored.grant, { ETag: stored.etag, ...extra });
}

function ifMatch(request: ApiRequest): string {
  const etag = request.headers.get('if-match');
  if (!etag) throw problems.preconditionRequired('Send If-Match with the ETag from GET so that concurrent edits are not lost.');
  return etag;
}

function grantId(request: ApiRequest): string {
  const id = request.params.id ?? '';
  if (!grantIdSchema.safeParse(id).success) throw problems.notFound('grant-not-found', 'There is no grant with that id.');
  return id;
}

const list: Handler<Services> = async (request, { services }) => {
  await admin(request, services);
  const grants = await services.grants.list();
  return json(200, { grants: grants.map((stored) => stored.grant) });
};

const create: Handler<Services> = async (request, { services, log }) => {
  const caller = await admin(request, services);
  const grant: Grant = parseBody(await request.text(), grantBodySchema);
  const stored = await services.grants.create(grant);
  log.info('grant created', { grantId: grant.id, by: caller.objectId, requestId: request.requestId });
  return withEtag(stored, 201, { Location: `/api/v1/admin/grants/${grant.id}` });
};

const read: Handler<Services> = async (request, { services }) => {
  await admin(request, services);
  return withEtag(await services.grants.get(grantId(request)));
};

const replace: Handler<Services> = async (request, { services, log }) => {
  const caller = await admin(request, services);
  const id = grantId(request);
  const etag = ifMatch(request);
  const schema = grantBodySchema.extend({ id: grantBodySchema.shape.id.optional() });
  const body = parseBody(await request.text(), schema);
  if (body.id !== undefined && body.id !== id) throw problems.badRequest(`The body's id "${body.id}" does not match the path's "${id}".`);
  const stored = await services.grants.replace({ ...body, id }, etag);
  log.info('grant replaced', { grantId: id, by: caller.objectId, requestId: request.requestId });
  return withEtag(stored);
};

const remove: Handler<Services> = async (request, { services, log }) => {
  const caller = await admin(request, services);
  const id = grantId(request);
  await services.grants.delete(id, ifMatch(request));
  log.info('grant deleted', { grantId: id, by: caller.objectId, requestId: request.requestId });
  return { status: 204 };
};

export const adminGrantsRoute: Route<Services> = { name: 'adminGrants', route: 'v1/admin/grants', handlers: { GET: list, POST: create } };
export const adminGrantRoute: Route<Services> = {
  name: 'adminGrant',
  route: 'v1/admin/grants/{id}',
  handlers: { GET: read, PUT: replace, DELETE: remove },
};
