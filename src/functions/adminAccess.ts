import { requireAdmin } from '../auth/adminAccess.js';
import type { CallerIdentity } from '../auth/callerToken.js';
import type { ApiRequest } from '../http/types.js';
import type { Services } from '../services.js';

/** Every admin handler starts here: the caller, proven to hold the admin app role. */
export function adminCaller(request: ApiRequest, services: Services): Promise<CallerIdentity> {
  return requireAdmin(services.callerTokens, request.headers.get('authorization'), services.config.adminRole);
}

/** The answers every admin operation can give besides its own. */
export const ADMIN_ERRORS = {
  401: { description: 'Missing or invalid bearer token' },
  403: { description: 'The token lacks the admin app role' },
};
