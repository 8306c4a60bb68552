import { ulid } from 'ulid';
import { z } from 'zod';
import { tokenFingerprint, type IssuanceRecord } from '../audit/issuanceRecord.js';
import type { CallerIdentity } from '../auth/callerToken.js';
import { parseBody } from '../http/body.js';
import { json, problemResponse } from '../http/dispatch.js';
import { asProblem, Problem, problems } from '../http/problem.js';
import { errorSummary } from '../logger.js';
import type { ApiResponse, Handler, Route } from '../http/types.js';
import { normalizeScopes, parseScope, type RepositoryScope } from '../registries/scope.js';
import type { Services } from '../services.js';

export const tokenRequestSchema = z.strictObject({
  registry: z.string().min(1).max(253).describe('Registry host as users type it: docker.io, ghcr.io, myreg.azurecr.io'),
  scopes: z
    .array(z.string().max(512))
    .min(1)
    .max(20)
    .transform((texts, ctx) => {
      const scopes: RepositoryScope[] = [];
      texts.forEach((text, index) => {
        const result = parseScope(text);
        if (result.ok) scopes.push(result.scope);
        else ctx.addIssue({ code: 'custom', path: [index], message: result.message });
      });
      return normalizeScopes(scopes);
    })
    .describe('repository:<name>:<action>[,<action>] with actions pull, push, delete'),
});

export const tokenResponseSchema = z.object({
  registry: z.string(),
  token: z.string(),
  expiresAt: z.iso.datetime(),
  expiresIn: z.number().int(),
  scopes: z.array(z.string()),
  issuanceId: z.string(),
  dockerConfig: z.object({ auths: z.record(z.string(), z.object({ registrytoken: z.string() })) }),
});

/** What the caller asked for, as far as it could be read: the audit records it even when invalid. */
function whatWasAsked(body: string): { registry: string | undefined; scopes: string[] } {
  try {
    const { registry, scopes } = JSON.parse(body) as { registry?: unknown; scopes?: unknown };
    return {
      registry: typeof registry === 'string' ? registry.slice(0, 253) : undefined,
      scopes: Array.isArray(scopes) ? scopes.slice(0, 20).map((scope) => String(scope).slice(0, 300)) : [],
    };
  } catch {
    return { registry: undefined, scopes: [] };
  }
}

/**
 * POST /v1/tokens: validate the caller, decide, mint, audit, answer. Every outcome is audited before
 * the answer leaves; if the audit write fails the caller gets 503 and never sees the token.
 */
const issue: Handler<Services> = async (request, { services, log }) => {
  const started = Date.now();
  const issuanceId = ulid();
  let caller: CallerIdentity | undefined;
  let body = '';
  const base = (): Omit<IssuanceRecord, 'outcome' | 'reason' | 'status'> => {
    const asked = whatWasAsked(body);
    return {
      issuanceId,
      requestId: request.requestId,
      time: new Date(started),
      tenantId: caller?.tenantId,
      objectId: caller?.objectId,
      appId: caller?.appId,
      registry: asked.registry === undefined ? undefined : services.issuer.canonicalHost(asked.registry),
      requestedScopes: asked.scopes,
      grantedScopes: [],
      grantIds: [],
      latencyMs: Date.now() - started,
      clientIp: request.clientIp,
    };
  };

  let response: ApiResponse;
  try {
    // Who is asking comes first: an unauthenticated body is never read, and every later denial names the caller.
    caller = await services.callerTokens.validate(request.headers.get('authorization'));
    const allowance = services.rateLimit.take(`${caller.tenantId}/${caller.objectId}`);
    if (!allowance.allowed) throw problems.rateLimited(allowance.retryAfterSeconds);
    body = await request.text();
    const input = parseBody(body, tokenRequestSchema);
    const issued = await services.issuer.issue(caller, input, new Date(started));
    await services.issuances.record({
      ...base(),
      registry: issued.entry.host,
      outcome: 'issued',
      reason: 'issued',
      status: 200,
      grantedScopes: issued.scopes,
      grantIds: issued.grantIds,
      expiresAt: issued.expiresAt,
      tokenFingerprint: tokenFingerprint(issued.token),
      tokenReused: issued.reused,
      credentialVersion: issued.credentialVersion,
    });
    response = json(200, {
      registry: issued.entry.host,
      token: issued.token,
      expiresAt: issued.expiresAt.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      expiresIn: Math.max(0, Math.floor((issued.expiresAt.getTime() - Date.now()) / 1000)),
      scopes: issued.scopes,
      issuanceId,
      dockerConfig: { auths: { [issued.entry.dockerConfigKey]: { registrytoken: issued.token } } },
    });
  } catch (error) {
    if (!(error instanceof Problem)) log.error('token issuance failed unexpectedly', { requestId: request.requestId, error: errorSummary(error) });
    let problem = asProblem(error);
    if (problem.code !== 'audit-unavailable') {
      try {
        await services.issuances.record({
          ...base(),
          outcome: problem.status >= 500 ? 'failed' : 'denied',
          reason: problem.code,
          status: problem.status,
        });
      } catch (auditError) {
        problem = asProblem(auditError);
      }
    }
    response = problemResponse(problem, request.requestId);
  }
  return response;
};

export const tokensRoute: Route<Services> = {
  name: 'tokens',
  route: 'v1/tokens',
  operations: {
    POST: {
      summary: 'Issue a short-lived registry token for exactly the granted scopes',
      description:
        'Send the workload\'s Entra access token (from IMDS, resource = the broker\'s audience). All-or-nothing: if any requested action is not granted the answer is 403 and names what is missing. Every decision is audited before the answer.',
      access: 'workload',
      requestBody: tokenRequestSchema,
      responses: {
        200: { description: 'The registry token, its real expiry, the granted scopes and a docker config entry', schema: tokenResponseSchema },
        400: { description: 'Malformed JSON, unknown field or bad scope grammar' },
        401: { description: 'Missing or invalid bearer token', headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' } },
        403: { description: 'A requested action is not granted' },
        404: { description: 'The registry is not in the catalog' },
        413: { description: 'Body over 16 KiB' },
        429: { description: 'This identity asked too often (CALLER_RATE_PER_MINUTE)', headers: { 'Retry-After': 'seconds' } },
        502: { description: 'The registry refused the broker or broke' },
        503: { description: 'A dependency is down (audit table, Key Vault, Entra metadata)', headers: { 'Retry-After': 'seconds' } },
        504: { description: 'The registry did not answer in time' },
      },
      handler: issue,
    },
  },
};
