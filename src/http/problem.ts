/**
 * RFC 9457 problem details. Every error the API returns is one of these; `code` doubles as the
 * machine-readable reason recorded in the audit table.
 */
export interface FieldError {
  path: string;
  message: string;
}

export interface ProblemOptions {
  headers?: Record<string, string>;
  errors?: FieldError[];
  /** A finer reason than `code` for audit records and aggregates (`invalid-token:expired`); never shown. */
  reason?: string;
}

export class Problem extends Error {
  readonly headers: Record<string, string>;
  readonly errors: FieldError[] | undefined;
  readonly reason: string;

  constructor(
    readonly status: number,
    readonly code: string,
    readonly title: string,
    readonly detail: string,
    options: ProblemOptions = {},
  ) {
    super(`${code}: ${detail}`);
    this.name = 'Problem';
    this.headers = options.headers ?? {};
    this.errors = options.errors;
    this.reason = options.reason ?? code;
  }

  get type(): string {
    return `urn:registry-broker:problem:${this.code}`;
  }

  toBody(requestId: string): Record<string, unknown> {
    return {
      type: this.type,
      title: this.title,
      status: this.status,
      detail: this.detail,
      requestId,
      ...(this.errors ? { errors: this.errors } : {}),
    };
  }
}

const RETRY_AFTER_SECONDS = '5';

export const problems = {
  badRequest: (detail: string, errors?: FieldError[]) =>
    new Problem(400, 'bad-request', 'The request is not valid', detail, errors ? { errors } : {}),
  invalidToken: (detail: string, reason: string) =>
    new Problem(401, 'invalid-token', 'The bearer token was not accepted', detail, {
      headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' },
      reason: `invalid-token:${reason}`,
    }),
  forbidden: (code: string, detail: string) => new Problem(403, code, 'Not allowed', detail),
  notFound: (code: string, detail: string) => new Problem(404, code, 'Not found', detail),
  methodNotAllowed: (allowed: string[]) =>
    new Problem(405, 'method-not-allowed', 'Method not allowed', `Use ${allowed.join(', ')}.`, {
      headers: { Allow: allowed.join(', ') },
    }),
  conflict: (detail: string) => new Problem(409, 'conflict', 'Conflict', detail),
  preconditionFailed: (detail: string) =>
    new Problem(412, 'precondition-failed', 'Precondition failed', detail),
  payloadTooLarge: (limit: number) =>
    new Problem(413, 'payload-too-large', 'Request body too large', `The body must be at most ${limit} bytes.`),
  unsupportedMediaType: () =>
    new Problem(415, 'unsupported-media-type', 'Unsupported media type', 'Send the body as application/json.'),
  rateLimited: (retryAfterSeconds: number) =>
    new Problem(429, 'rate-limited', 'Too many requests', `This identity asked too often; retry in ${retryAfterSeconds} s.`, {
      headers: { 'Retry-After': String(retryAfterSeconds) },
    }),
  /** Failed authentications from one client address past ANONYMOUS_RATE_PER_MINUTE; valid tokens never get this. */
  anonymousRateLimited: (retryAfterSeconds: number) =>
    new Problem(429, 'anonymous-rate-limited', 'Too many failed authentications', `Too many requests with invalid tokens came from this address; retry in ${retryAfterSeconds} s.`, {
      headers: { 'Retry-After': String(retryAfterSeconds) },
    }),
  realmNotAllowed: (detail: string) => new Problem(502, 'realm-not-allowed', 'The registry named a token realm the broker will not use', detail),
  upstreamNarrowed: (detail: string) => new Problem(502, 'upstream-narrowed', 'The registry granted less than the broker asked for', detail),
  preconditionRequired: (detail: string) =>
    new Problem(428, 'precondition-required', 'Precondition required', detail),
  upstreamRefused: (detail: string) => new Problem(502, 'upstream-refused', 'The upstream registry refused', detail),
  upstreamBroken: (detail: string) =>
    new Problem(502, 'upstream-error', 'The upstream registry answered with an error', detail),
  dependencyDown: (dependency: string, detail: string) =>
    new Problem(503, `${dependency}-unavailable`, 'A dependency is unavailable', detail, {
      headers: { 'Retry-After': RETRY_AFTER_SECONDS },
    }),
  upstreamTimeout: (detail: string) => new Problem(504, 'upstream-timeout', 'The upstream registry timed out', detail),
  internal: () =>
    new Problem(500, 'internal-error', 'Internal error', 'The broker hit an unexpected error; see the requestId in its logs.'),
};

export function asProblem(error: unknown): Problem {
  return error instanceof Problem ? error : problems.internal();
}
