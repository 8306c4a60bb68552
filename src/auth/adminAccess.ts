import { errors } from '../errors.js';
import type { CallerIdentity, CallerTokenValidator } from './callerToken.js';

/**
 * Admin routes: a valid broker token that carries the admin app role in `roles`. Operators' user
 * tokens (`az login`) are accepted here as well as application tokens; a token without the role,
 * whatever its scopes, is not.
 */
export async function requireAdmin(validator: CallerTokenValidator, authorization: string | null, adminRole: string): Promise<CallerIdentity> {
  const caller = await validator.validate(authorization, { allowDelegated: true });
  if (!caller.roles.includes(adminRole)) {
    throw errors.forbidden('not-admin', `This route needs the "${adminRole}" app role on the broker's app registration.`);
  }
  return caller;
}
