import * as z from 'zod';
import { explain, NOT_APPLYING } from '../grants/explain.js';
import { parseJson, validated } from '../http/body.js';
import { json } from '../http/dispatch.js';
import { errors } from '../errors.js';
import type { Handler, Route } from '../http/types.js';
import { tokenRequestSchema } from '../issuance/tokenRequest.js';
import { parseScope, type RepositoryScope } from '../registries/scope.js';
import type { Services } from '../services.js';
import { ADMIN_ERRORS, adminCaller } from './adminAccess.js';
import { resolveRange, timeRangeFields } from './adminQuery.js';

/**
 * POST /v1/admin/explain: why would (or did) this identity get, or not get, these scopes? Answers per
 * requested action with the grant that allows it, or each grant's first reason not to apply, and any
 * block. Nothing is issued; the question is admin-audited. With `requestId` it replays an audited
 * token request (its caller, registry and scopes) against today's grants and blocks.
 */
const guid = z.guid().transform((id) => id.toLowerCase());
const subjectSchema = z
  .strictObject({ objectId: guid.optional(), appId: guid.optional(), tenantId: guid.optional() })
  .refine((subject) => subject.objectId !== undefined || subject.appId !== undefined, 'name the identity by objectId and/or appId');
const questionSchema = z.strictObject({ subject: subjectSchema, registry: tokenRequestSchema.shape.registry, scopes: tokenRequestSchema.shape.scopes });
/** Where to look for the request: the admin searches' own range (default the last 24 h, at most 31 days). */
const replaySchema = z
  .strictObject({
    requestId: z.string().min(1).max(100).describe('the requestId of an audited token request (in its answer and its audit record)'),
    from: timeRangeFields.from,
    to: timeRangeFields.to,
  })
  .transform((query, ctx) => ({ requestId: query.requestId, ...resolveRange(query, ctx) }));
export const explainBodySchema = z.union([questionSchema, replaySchema]);

const explanationSchema = z.object({
  subject: z.object({ objectId: z.string().optional(), appId: z.string().optional(), tenantId: z.string().optional() }),
  registry: z.string(),
  allowed: z.boolean(),
  blocked: z.boolean(),
  block: z.object({ blockedAt: z.string(), reason: z.string() }).optional(),
  actions: z.array(
    z.object({
      repository: z.string(),
      action: z.string(),
      allowed: z.boolean(),
      grantId: z.string().optional(),
      lifetimeCapSeconds: z.number().optional(),
      grants: z.array(z.object({ id: z.string(), reason: z.enum(NOT_APPLYING) })).optional(),
    }),
  ),
  lifetimeCapSeconds: z.number().optional().describe('the least cap of the allowing grants (maxTtlSeconds, time to notAfter), before MAX_TTL_SECONDS'),
  maxTtlSeconds: z.number(),
  replayed: z.object({ requestId: z.string(), time: z.string(), outcome: z.string(), reason: z.string() }).optional(),
});

type Question = { subject: { objectId?: string; appId?: string; tenantId?: string }; registry: string; scopes: RepositoryScope[]; replayed?: z.infer<typeof explanationSchema>['replayed'] };

async function replay(services: Services, { requestId, from, to }: z.infer<typeof replaySchema>): Promise<Question> {
  const { issuances } = await services.issuanceSearch.search({ from, to, requestId, limit: 1 });
  const record = issuances[0];
  if (!record?.registry || (!record.objectId && !record.appId)) {
    throw errors.notFound('request-not-found', `No audited token request ${requestId} by a known identity between ${from.toISOString()} and ${to.toISOString()}.`);
  }
  const scopes = record.requestedScopes.flatMap((text) => {
    const parsed = parseScope(text);
    return parsed.ok ? [parsed.scope] : [];
  });
  return {
    subject: { objectId: record.objectId, appId: record.appId, tenantId: record.tenantId },
    registry: record.registry,
    scopes,
    replayed: { requestId: record.requestId, time: record.time.toISOString(), outcome: record.outcome, reason: record.reason },
  };
}

const explainHandler: Handler<Services> = async (request, { services }) => {
  const caller = await adminCaller(request, services);
  // One of the two shapes by its telling field, so that a mistake is named in that shape's terms
  // (a union would only say that the body matches neither).
  const value = parseJson(await request.text());
  const replaying = typeof value === 'object' && value !== null && 'requestId' in value;
  const question: Question = replaying ? await replay(services, validated(value, replaySchema)) : validated(value, questionSchema);
  const entry = services.issuer.registry(question.registry);
  const block = question.subject.objectId ? await services.blocks.find(question.subject.objectId) : undefined;
  const answer = explain(
    { objectId: question.subject.objectId, appId: question.subject.appId },
    entry.host,
    question.scopes,
    await services.grants.active(),
    block,
    new Date(),
  );
  await services.adminAudit.write(
    { requestId: request.requestId, actor: caller, action: 'explain', target: question.subject.objectId ?? question.subject.appId ?? '', after: { registry: entry.host, allowed: answer.allowed } },
    'completed',
  );
  return json(200, {
    subject: question.subject,
    registry: entry.host,
    ...answer,
    ...(block ? { block: { blockedAt: block.blockedAt, reason: block.reason } } : {}),
    maxTtlSeconds: services.config.maxTtlSeconds,
    ...(question.replayed ? { replayed: question.replayed } : {}),
  });
};

export const adminExplainRoute: Route<Services> = {
  name: 'adminExplain',
  route: 'v1/admin/explain',
  operations: {
    POST: {
      summary: 'Explain a decision: per action, the grant that allows it, or why each grant does not apply',
      description:
        'Body: {subject: {objectId?, appId?, tenantId?}, registry, scopes} or {requestId, from?, to?} to replay an audited token request against the current grants and blocks. Nothing is issued; the call is admin-audited.',
      access: 'admin',
      requestBody: explainBodySchema,
      responses: {
        200: { description: 'The explanation', schema: explanationSchema },
        400: { description: 'Invalid question' },
        404: { description: 'Unknown registry, or no audited request with that requestId in the range' },
        ...ADMIN_ERRORS,
        503: { description: 'The grant store, block list or audit is unavailable' },
      },
      handler: explainHandler,
    },
  },
};
