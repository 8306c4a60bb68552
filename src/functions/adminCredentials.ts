import * as z from 'zod';
import { ADMIN_ERRORS, adminCaller } from './adminAccess.js';
import { json } from '../http/dispatch.js';
import { errors } from '../errors.js';
import type { Handler, Route } from '../http/types.js';
import type { Services } from '../services.js';
import { telemetry } from '../telemetry/instruments.js';
import { credentialStatusSchema } from '../credentials/rotation/credentialStatus.js';

/** Admin API for stored credentials: their state, and a rotation on demand. Never a secret value. */
const rotationReportSchema = z.object({ registry: z.string(), outcome: z.string(), step: z.string(), rotationId: z.string(), detail: z.string() });

const list: Handler<Services> = async (request, { services }) => {
  await adminCaller(request, services);
  const statuses = await services.rotation.status();
  return json(200, { credentials: statuses });
};

const rotate: Handler<Services> = async (request, { services, log }) => {
  const caller = await adminCaller(request, services);
  const registry = request.params.registry ?? '';
  // Recorded before anything is looked up, so an unknown registry is a refusal in the audit too.
  const change = { requestId: request.requestId, actor: caller, action: 'credential.rotate' as const, target: services.issuer.canonicalHost(registry.slice(0, 253)) };
  const { entry, report } = await services.adminAudit.change(change, async () => {
    const found = services.issuer.registry(registry);
    return { entry: found, report: await services.rotation.rotate(found.host, { force: true }) };
  });
  telemetry.rotationRun(entry.host, report.outcome);
  // Nothing to rotate is a refusal (409), not a rotation that completed.
  const outcome = report.outcome === 'failed' ? 'failed' : report.outcome === 'not-managed' ? 'refused' : 'completed';
  await services.adminAudit.write({ ...change, after: report }, outcome, report.outcome);
  if (report.outcome === 'not-managed') throw errors.conflict(`${entry.host}: ${report.detail}.`);
  log.info('rotation requested', { registry: entry.host, by: caller.objectId, outcome: report.outcome, requestId: request.requestId });
  return json(report.outcome === 'failed' ? 502 : 200, report);
};


export const adminCredentialsRoute: Route<Services> = {
  name: 'adminCredentials',
  route: 'v1/admin/credentials',
  operations: {
    GET: {
      summary: 'Stored credentials: version, age, rotation state, next due time, last error',
      access: 'admin',
      responses: { 200: { description: 'One entry per catalog registry', schema: z.object({ credentials: z.array(credentialStatusSchema) }) }, ...ADMIN_ERRORS },
      handler: list,
    },
  },
};

export const adminRotateRoute: Route<Services> = {
  name: 'adminRotate',
  route: 'v1/admin/credentials/{registry}/rotate',
  operations: {
    POST: {
      summary: 'Rotate a stored credential now (the old one is revoked after the grace period)',
      access: 'admin',
      responses: {
        200: { description: 'The rotation ran: rotated, in grace, or busy on another instance', schema: rotationReportSchema },
        404: { description: 'The registry is not in the catalog' },
        409: { description: 'The registry has no rotation policy or cannot be rotated by API' },
        502: { description: 'The rotation failed; the old credential is still in place', schema: rotationReportSchema },
        ...ADMIN_ERRORS,
      },
      handler: rotate,
    },
  },
};
