/**
 * The broker's failures, as the domain reports them: one class per kind of failure, each instance
 * with a machine-readable `code` (also the reason its audit record gives). Nothing HTTP lives here:
 * src/http/problem.ts maps each kind to a status and problem+json, once, the way jose's
 * util/errors.ts gives every failure its own class and leaves the answer to the caller.
 */
export interface FieldError {
  path: string;
  message: string;
}

export interface BrokerErrorOptions {
  /** A finer reason than `code` for audit records and aggregates (`invalid-token:expired`); never shown. */
  reason?: string;
  /** When a retry may succeed (rate limits, dependencies down). */
  retryAfterSeconds?: number;
  errors?: FieldError[];
}

export type ErrorKind =
  | 'invalid-request'
  | 'unauthenticated'
  | 'forbidden'
  | 'not-found'
  | 'method-not-allowed'
  | 'conflict'
  | 'stale'
  | 'too-large'
  | 'headers-too-large'
  | 'unsupported-media'
  | 'precondition-required'
  | 'rate-limited'
  | 'upstream-refused'
  | 'upstream-failed'
  | 'unavailable'
  | 'upstream-timeout'
  | 'internal';

export abstract class BrokerError extends Error {
  abstract readonly kind: ErrorKind;
  readonly reason: string;
  readonly retryAfterSeconds: number | undefined;
  readonly errors: FieldError[] | undefined;

  constructor(
    readonly code: string,
    readonly title: string,
    readonly detail: string,
    options: BrokerErrorOptions = {},
  ) {
    super(`${code}: ${detail}`);
    this.name = new.target.name;
    this.reason = options.reason ?? code;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.errors = options.errors;
  }

  /** The broker or something it depends on failed, rather than the request being refused. */
  get isFailure(): boolean {
    return FAILURES.has(this.kind);
  }
}

export class InvalidRequest extends BrokerError { readonly kind = 'invalid-request' as const; }
export class Unauthenticated extends BrokerError { readonly kind = 'unauthenticated' as const; }
export class Forbidden extends BrokerError { readonly kind = 'forbidden' as const; }
export class NotFound extends BrokerError { readonly kind = 'not-found' as const; }
export class MethodNotAllowed extends BrokerError {
  readonly kind = 'method-not-allowed' as const;
  constructor(readonly allowed: string[]) {
    super('method-not-allowed', 'Method not allowed', `Use ${allowed.join(', ')}.`);
  }
}
export class Conflict extends BrokerError { readonly kind = 'conflict' as const; }
export class Stale extends BrokerError { readonly kind = 'stale' as const; }
export class TooLarge extends BrokerError { readonly kind = 'too-large' as const; }
export class HeadersTooLarge extends BrokerError { readonly kind = 'headers-too-large' as const; }
export class UnsupportedMedia extends BrokerError { readonly kind = 'unsupported-media' as const; }
export class PreconditionRequired extends BrokerError { readonly kind = 'precondition-required' as const; }
export class RateLimited extends BrokerError { readonly kind = 'rate-limited' as const; }
export class UpstreamRefused extends BrokerError { readonly kind = 'upstream-refused' as const; }
export class UpstreamFailed extends BrokerError { readonly kind = 'upstream-failed' as const; }
export class Unavailable extends BrokerError { readonly kind = 'unavailable' as const; }
export class UpstreamTimeout extends BrokerError { readonly kind = 'upstream-timeout' as const; }
export class Internal extends BrokerError { readonly kind = 'internal' as const; }

const FAILURES = new Set<ErrorKind>(['upstream-refused', 'upstream-failed', 'unavailable', 'upstream-timeout', 'internal']);

const DEPENDENCY_RETRY_SECONDS = 5;

/** The failures the broker reports, by what happened. */
export const errors = {
  badRequest: (detail: string, fieldErrors?: FieldError[]) =>
    new InvalidRequest('bad-request', 'The request is not valid', detail, fieldErrors ? { errors: fieldErrors } : {}),
  invalidToken: (detail: string, reason: string) => new Unauthenticated('invalid-token', 'The bearer token was not accepted', detail, { reason: `invalid-token:${reason}` }),
  forbidden: (code: string, detail: string) => new Forbidden(code, 'Not allowed', detail),
  notFound: (code: string, detail: string) => new NotFound(code, 'Not found', detail),
  methodNotAllowed: (allowed: string[]) => new MethodNotAllowed(allowed),
  conflict: (detail: string) => new Conflict('conflict', 'Conflict', detail),
  preconditionFailed: (detail: string) => new Stale('precondition-failed', 'Precondition failed', detail),
  headersTooLarge: (limit: number) => new HeadersTooLarge('headers-too-large', 'Request headers too large', `The request's headers must be at most ${limit} bytes in all.`),
  payloadTooLarge: (limit: number) => new TooLarge('payload-too-large', 'Request body too large', `The body must be at most ${limit} bytes.`),
  unsupportedMediaType: () => new UnsupportedMedia('unsupported-media-type', 'Unsupported media type', 'Send the body as application/json.'),
  preconditionRequired: (detail: string) => new PreconditionRequired('precondition-required', 'Precondition required', detail),
  rateLimited: (retryAfterSeconds: number) =>
    new RateLimited('rate-limited', 'Too many requests', `This identity asked too often; retry in ${retryAfterSeconds} s.`, { retryAfterSeconds }),
  /** Failed authentications from one client address past ANONYMOUS_RATE_PER_MINUTE; valid tokens never get this. */
  anonymousRateLimited: (retryAfterSeconds: number) =>
    new RateLimited('anonymous-rate-limited', 'Too many failed authentications', `Too many requests with invalid tokens came from this address; retry in ${retryAfterSeconds} s.`, {
      retryAfterSeconds,
    }),
  realmNotAllowed: (detail: string) => new UpstreamFailed('realm-not-allowed', 'The registry named a token realm the broker will not use', detail),
  upstreamNarrowed: (detail: string) => new UpstreamFailed('upstream-narrowed', 'The registry granted less than the broker asked for', detail),
  upstreamRefused: (detail: string) => new UpstreamRefused('upstream-refused', 'The upstream registry refused', detail),
  upstreamBroken: (detail: string) => new UpstreamFailed('upstream-error', 'The upstream registry answered with an error', detail),
  dependencyDown: (dependency: string, detail: string, retryAfterSeconds = DEPENDENCY_RETRY_SECONDS) =>
    new Unavailable(`${dependency}-unavailable`, 'A dependency is unavailable', detail, { retryAfterSeconds }),
  upstreamTimeout: (detail: string) => new UpstreamTimeout('upstream-timeout', 'The upstream registry timed out', detail),
  internal: () => new Internal('internal-error', 'Internal error', 'The broker hit an unexpected error; see the requestId in its logs.'),
};

/** Anything thrown, as a broker error: an unexpected one is an internal error (and is logged where it is caught). */
export function asBrokerError(error: unknown): BrokerError {
  return error instanceof BrokerError ? error : errors.internal();
}

/** The HTTP status an Azure SDK error carries; undefined when the service was not reached at all. */
export function azureStatus(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** Azure's definitive answers (gone, disabled, forbidden): retrying will not help. */
export function isDefinitiveAzureAnswer(error: unknown): boolean {
  const status = azureStatus(error);
  return status === 403 || status === 404;
}
