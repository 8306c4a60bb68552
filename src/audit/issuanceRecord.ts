import { createHash } from 'node:crypto';

export type Outcome = 'issued' | 'denied' | 'failed';

/** One decision on one request. Identifiers and outcomes only: never a token, password or request body. */
export interface IssuanceRecord {
  issuanceId: string;
  requestId: string;
  time: Date;
  outcome: Outcome;
  /** Problem code for denied/failed, `issued` otherwise. */
  reason: string;
  status: number;
  tenantId?: string;
  objectId?: string;
  appId?: string;
  registry?: string;
  requestedScopes: string[];
  grantedScopes: string[];
  grantIds: string[];
  expiresAt?: Date;
  latencyMs: number;
  clientIp: string;
  /** First 16 hex digits of SHA-256(token): enough to match a leaked token to its record, useless to replay. */
  tokenFingerprint?: string;
  /** The same upstream token went to an earlier caller with the same scope set. */
  tokenReused?: boolean;
  credentialVersion?: string;
  /**
   * `verified`: the upstream token's `access` claim was read and covers exactly what was granted;
   * `opaque`: the registry's token cannot be read, so the broker could not check what it grants.
   */
  upstreamScope?: 'verified' | 'opaque';
  /** `login` for a login credential (absent: a registry token); its `credentialId` is the provider's id. */
  form?: 'token' | 'login';
  credentialId?: string;
}

export function tokenFingerprint(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 16);
}
