import { Problem } from '../../http/problem.js';

/** Problems of the login form. Details name the provider and the status, never an upstream body or a secret. */
const DEFAULT_RETRY_AFTER_SECONDS = 5;

export const loginProblems = {
  formUnsupported: (registry: string, forms: string[]) =>
    new Problem(400, 'form-unsupported', 'The registry does not support this credential form', `${registry} supports the form${forms.length > 1 ? 's' : ''} ${forms.map((form) => `"${form}"`).join(', ')} only.`),
  scopeUnsupported: (detail: string) => new Problem(400, 'login-scope-unsupported', 'The provider cannot grant exactly this scope set', detail),
  refused: (provider: string, status: number) =>
    new Problem(502, 'login-provider-refused', 'The login-credential provider refused', `${provider} refused the broker's request (HTTP ${status}).`, {
      reason: `login-provider-refused:${status}`,
    }),
  broken: (detail: string) => new Problem(502, 'login-provider-error', 'The login-credential provider answered with an error', detail),
  unavailable: (detail: string, retryAfterSeconds = DEFAULT_RETRY_AFTER_SECONDS) =>
    new Problem(503, 'login-provider-unavailable', 'The login-credential provider is unavailable', detail, {
      headers: { 'Retry-After': String(retryAfterSeconds) },
    }),
  rateLimited: (provider: string, retryAfterSeconds: number) =>
    new Problem(503, 'login-provider-rate-limited', 'The login-credential provider is rate-limiting the broker', `${provider} asked the broker to wait ${retryAfterSeconds} s.`, {
      headers: { 'Retry-After': String(retryAfterSeconds) },
    }),
  timeout: (provider: string) => new Problem(504, 'login-provider-timeout', 'The login-credential provider timed out', `${provider} did not answer in time.`),
  storeDown: () =>
    new Problem(503, 'login-store-unavailable', 'A dependency is unavailable', 'The login credential table (Table Storage) is unavailable.', {
      headers: { 'Retry-After': String(DEFAULT_RETRY_AFTER_SECONDS) },
    }),
};
