import type { AdminAuditLog } from '../audit/adminAudit.js';
import { asBrokerError, errors } from '../errors.js';
import type { AuthenticationFailures } from './authenticationFailures.js';
import type { CallerIdentity, CallerTokenValidator } from './callerToken.js';

/** Who knocked on an admin route, and which one. */
export interface AdminRequestFacts {
  requestId: string;
  clientIp: string;
  /** The operation, as `GET /api/v1/admin/issuances`: the refusal's target in the admin audit. */
  operation: string;
}

/**
 * Admin routes: a valid broker token that carries the admin app role in `roles`. Operators' user
 * tokens (`az login`) are accepted here as well as application tokens; a token without the role,
 * whatever its scopes, is not. Refusals are kept as on the token route: a token that does not
 * authenticate is counted per address and minute and shares the address's allowance (past it, 429);
 * a valid token without the role is one `access` record in the admin audit, written before the 403
 * leaves (if it cannot be written, 503), so an operator sees who tried.
 */
export class AdminAccess {
  constructor(
    private readonly validator: CallerTokenValidator,
    private readonly adminRole: string,
    private readonly authenticationFailures: AuthenticationFailures,
    private readonly adminAudit: AdminAuditLog,
  ) {}

  async admit(authorization: string | null, facts: AdminRequestFacts): Promise<CallerIdentity> {
    let caller: CallerIdentity;
    try {
      caller = await this.validator.validate(authorization, { allowDelegated: true });
    } catch (error) {
      const failure = asBrokerError(error);
      if (failure.kind !== 'unauthenticated') throw failure;
      throw this.authenticationFailures.refuse(failure, facts.clientIp);
    }
    if (!caller.roles.includes(this.adminRole)) {
      await this.adminAudit.write({ requestId: facts.requestId, actor: caller, action: 'access', target: facts.operation }, 'refused', 'not-admin');
      throw errors.forbidden('not-admin', `This route needs the "${this.adminRole}" app role on the broker's app registration.`);
    }
    return caller;
  }
}
