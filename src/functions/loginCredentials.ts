import * as z from 'zod';
import { ADMIN_ERRORS, adminCaller } from './adminAccess.js';
import { json } from '../http/dispatch.js';
import type { Handler, Route } from '../http/types.js';
import type { Services } from '../services.js';

/** Admin API: login credentials that may still work at their provider. Identifiers and a fingerprint, never a password. */
const loginCredentialSchema = z.object({
  issuanceId: z.string().describe('The issuance that created it; the provider-side label or token name carries it too'),
  state: z.enum(['creating', 'live']).describe('creating: the provider was asked and has not answered (cleanup follows up)'),
  registry: z.string(),
  provider: z.string(),
  tenantId: z.string(),
  objectId: z.string(),
  scopes: z.array(z.string()),
  credentialId: z.string().optional(),
  username: z.string().optional(),
  fingerprint: z.string().optional().describe('First 16 hex digits of SHA-256(password)'),
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime().optional(),
  lastError: z.string().optional(),
});

const iso = (date: Date | undefined) => date?.toISOString();

const list: Handler<Services> = async (request, { services }) => {
  await adminCaller(request, services);
  const rows = await services.logins.live();
  const credentials = rows.map((row) =>
    loginCredentialSchema.parse({
      issuanceId: row.issuanceId,
      state: row.state,
      registry: row.registry,
      provider: row.provider,
      tenantId: row.tenantId,
      objectId: row.objectId,
      scopes: row.scopes,
      credentialId: row.credentialId,
      username: row.username,
      fingerprint: row.fingerprint,
      createdAt: iso(row.createdAt),
      expiresAt: iso(row.expiresAt),
      lastError: row.lastError,
    }),
  );
  return json(200, { credentials });
};

export const adminLoginCredentialsRoute: Route<Services> = {
  name: 'adminLoginCredentials',
  route: 'v1/admin/login-credentials',
  operations: {
    GET: {
      summary: 'Live login credentials (form "login") on every instance: who, what, until when; never a password',
      access: 'admin',
      responses: {
        200: { description: 'Every login credential not yet deleted at its provider', schema: z.object({ credentials: z.array(loginCredentialSchema) }) },
        503: { description: 'The login credential table is unavailable', headers: { 'Retry-After': 'seconds' } },
        ...ADMIN_ERRORS,
      },
      handler: list,
    },
  },
};
