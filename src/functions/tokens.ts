import { ulid } from '../ids.js';
import { json, problemResponse } from '../http/dispatch.js';
import { asBrokerError } from '../errors.js';
import type { Handler, Route } from '../http/types.js';
import { readTokenRequest, tokenRequestSchema } from '../issuance/tokenRequest.js';
import type { Services } from '../services.js';
import { loginAnswer, tokenAnswer, tokenAnswerSchema } from './tokenAnswers.js';

/**
 * POST /v1/tokens: authenticate, then hand the exchange to the use case (src/issuance/tokenExchange.ts),
 * which decides, mints and audits before it answers; this maps its outcome to HTTP.
 */
const issue: Handler<Services> = async (request, { services }) => {
  const facts = { issuanceId: ulid(), requestId: request.requestId, clientIp: request.clientIp, receivedAt: new Date() };
  // Who is asking comes first: an unauthenticated body is never read.
  const authentication = await services.callerTokens.validate(request.headers.get('authorization')).then(
    (caller) => ({ caller }),
    (error: unknown) => ({ failure: asBrokerError(error) }),
  );
  const outcome = await services.tokenExchange.exchange(authentication, () => readTokenRequest(() => request.text()), facts);
  if ('refused' in outcome) return problemResponse(outcome.refused, request.requestId);
  if ('login' in outcome) return json(200, loginAnswer(outcome.login, facts.issuanceId));
  return json(200, tokenAnswer(outcome.issued, facts.issuanceId));
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
        200: {
          description: 'Form token: the registry token, its real expiry, the granted scopes and a docker config entry. Form login: username, password, the expiry the provider reported, and a docker config `auth` entry',
          schema: tokenAnswerSchema,
        },
        400: { description: 'Malformed JSON, unknown field, bad scope grammar; `form-unsupported` (the registry has no login provider; the detail names its forms), `login-scope-unsupported`' },
        401: { description: 'Missing or invalid bearer token', headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' } },
        403: { description: 'A requested action is not granted' },
        404: { description: 'The registry is not in the catalog' },
        413: { description: 'Body over 16 KiB' },
        429: { description: 'This identity asked too often (CALLER_RATE_PER_MINUTE)', headers: { 'Retry-After': 'seconds' } },
        502: { description: 'The registry refused the broker or broke' },
        503: { description: 'A dependency is down (audit table, Key Vault, Entra metadata, the login-credential provider or its table); a rate-limiting provider\'s Retry-After is passed on', headers: { 'Retry-After': 'seconds' } },
        504: { description: 'The registry, or the login-credential provider, did not answer in time' },
      },
      handler: issue,
    },
  },
};
