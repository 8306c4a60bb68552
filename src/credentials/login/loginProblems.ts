import { InvalidRequest, Unavailable, UpstreamFailed, UpstreamRefused, UpstreamTimeout } from '../../errors.js';

/** Problems of the login form. Details name the provider and the status, never an upstream body or a secret. */
const DEFAULT_RETRY_AFTER_SECONDS = 5;

export const loginProblems = {
  formUnsupported: (registry: string, forms: string[]) =>
    new InvalidRequest('form-unsupported', 'The registry does not support this credential form', `${registry} supports the form${forms.length > 1 ? 's' : ''} ${forms.map((form) => `"${form}"`).join(', ')} only.`),
  scopeUnsupported: (detail: string) => new InvalidRequest('login-scope-unsupported', 'The provider cannot grant exactly this scope set', detail),
  refused: (provider: string, status: number) =>
    new UpstreamRefused('login-provider-refused', 'The login-credential provider refused', `${provider} refused the broker's request (HTTP ${status}).`, {
      reason: `login-provider-refused:${status}`,
    }),
  broken: (detail: string) => new UpstreamFailed('login-provider-error', 'The login-credential provider answered with an error', detail),
  unavailable: (detail: string, retryAfterSeconds = DEFAULT_RETRY_AFTER_SECONDS) =>
    new Unavailable('login-provider-unavailable', 'The login-credential provider is unavailable', detail, { retryAfterSeconds }),
  rateLimited: (provider: string, retryAfterSeconds: number) =>
    new Unavailable('login-provider-rate-limited', 'The login-credential provider is rate-limiting the broker', `${provider} asked the broker to wait ${retryAfterSeconds} s.`, {
      retryAfterSeconds,
    }),
  timeout: (provider: string) => new UpstreamTimeout('login-provider-timeout', 'The login-credential provider timed out', `${provider} did not answer in time.`),
  storeDown: () =>
    new Unavailable('login-store-unavailable', 'A dependency is unavailable', 'The login credential table (Table Storage) is unavailable.', {
      retryAfterSeconds: DEFAULT_RETRY_AFTER_SECONDS,
    }),
};
