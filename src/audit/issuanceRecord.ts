import { createHash } from 'node:crypto';
import * as z from 'zod';

export const OUTCOMES = ['issued', 'denied', 'failed'] as const;
export type Outcome = (typeof OUTCOMES)[number];

/**
 * One decision on one token request — the fields of the `issuances` table, spelled once: the writer,
 * the search, the admin API, OpenAPI and the CLI all use this schema. Identifiers and outcomes only:
 * never a token, password or request body.
 */
export const issuanceRecordSchema = z.object({
  issuanceId: z.string(),
  requestId: z.string().describe('`aggregate` for a row that counts failed authentications'),
  time: z.date(),
  outcome: z.enum(OUTCOMES),
  reason: z.string().describe('problem code for denied/failed (invalid-token:<why> in aggregates), `issued` otherwise'),
  status: z.number().int(),
  tenantId: z.string().optional(),
  objectId: z.string().optional(),
  appId: z.string().optional(),
  registry: z.string().optional(),
  requestedScopes: z.array(z.string()),
  grantedScopes: z.array(z.string()),
  grantIds: z.array(z.string()),
  expiresAt: z.date().optional(),
  latencyMs: z.number(),
  clientIp: z.string(),
  tokenFingerprint: z.string().optional().describe('first 16 hex digits of SHA-256 of the token or password: matches a leaked one to its record, useless to replay'),
  tokenReused: z.boolean().optional().describe('the same upstream token or login credential went to an earlier request with the same scope set'),
  credentialVersion: z.string().optional(),
  upstreamScope: z.enum(['verified', 'opaque']).optional().describe('whether the upstream token was read and covers exactly the granted scopes'),
  form: z.enum(['token', 'login']).optional().describe('login: a login credential was issued (absent: a registry token)'),
  credentialId: z.string().optional().describe("form login: the provider's id of the credential"),
  count: z.number().int().optional().describe('aggregate rows of failed authentications: requests from one address with one reason in one minute'),
});

export type IssuanceRecord = z.infer<typeof issuanceRecordSchema>;

export function tokenFingerprint(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 16);
}
