import { BrokerError, MethodNotAllowed, type ErrorKind } from '../errors.js';

/**
 * RFC 9457 problem details: the one place where the domain's failures (src/errors.ts) become HTTP.
 * Each kind of failure has its status; `code` becomes the problem's type.
 */
const STATUS: Record<ErrorKind, number> = {
  'invalid-request': 400,
  unauthenticated: 401,
  forbidden: 403,
  'not-found': 404,
  'method-not-allowed': 405,
  conflict: 409,
  stale: 412,
  'too-large': 413,
  'headers-too-large': 431,
  'unsupported-media': 415,
  'precondition-required': 428,
  'rate-limited': 429,
  internal: 500,
  'upstream-refused': 502,
  'upstream-failed': 502,
  unavailable: 503,
  'upstream-timeout': 504,
};

export function statusOf(error: BrokerError): number {
  return STATUS[error.kind];
}

export function problemType(code: string): string {
  return `urn:registry-broker:problem:${code}`;
}

export function problemHeaders(error: BrokerError): Record<string, string> {
  return {
    ...(error.kind === 'unauthenticated' ? { 'WWW-Authenticate': 'Bearer error="invalid_token"' } : {}),
    ...(error.retryAfterSeconds !== undefined ? { 'Retry-After': String(error.retryAfterSeconds) } : {}),
    ...(error instanceof MethodNotAllowed ? { Allow: error.allowed.join(', ') } : {}),
  };
}

export function problemBody(error: BrokerError, requestId: string): Record<string, unknown> {
  return {
    type: problemType(error.code),
    title: error.title,
    status: statusOf(error),
    detail: error.detail,
    requestId,
    ...(error.errors ? { errors: error.errors } : {}),
  };
}
