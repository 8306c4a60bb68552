import type { CallerIdentity } from '../auth/callerToken.js';
import type { ApiRequest } from '../http/types.js';
import type { Services } from '../services.js';

/** Every admin handler starts here: the caller, proven to hold the admin app role (refusals kept: AdminAccess). */
export function adminCaller(request: ApiRequest, services: Services): Promise<CallerIdentity> {
  return services.adminAccess.admit(request.headers.get('authorization'), {
    requestId: request.requestId,
    clientIp: request.clientIp,
    operation: `${request.method.toUpperCase()} ${request.url.pathname}`,
  });
}

/** The answers every admin operation can give besides its own. */
export const ADMIN_ERRORS = {
  401: { description: 'Missing or invalid bearer token' },
  403: { description: 'The token lacks the admin app role (recorded in the admin audit first: 503 if it cannot be)' },
  429: { description: 'Too many requests with invalid tokens from this address' },
};
