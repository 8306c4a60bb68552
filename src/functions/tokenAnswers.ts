import * as z from 'zod';
import type { IssuedLogin } from '../issuance/loginIssuer.js';
import type { IssuedToken } from '../issuance/tokenIssuer.js';

/** The two 200 answers of POST /v1/tokens, one per credential form (DESIGN.md §4). */
export const tokenResponseSchema = z.object({
  registry: z.string(),
  token: z.string(),
  expiresAt: z.iso.datetime(),
  expiresIn: z.number().int(),
  scopes: z.array(z.string()),
  issuanceId: z.string(),
  dockerConfig: z.object({ auths: z.record(z.string(), z.object({ registrytoken: z.string() })) }),
});

/** Form "login": a username/password any client logs in with; it mints registry tokens itself. */
export const loginResponseSchema = z.object({
  registry: z.string(),
  form: z.literal('login'),
  username: z.string(),
  password: z.string(),
  expiresAt: z.iso.datetime(),
  expiresIn: z.number().int(),
  credentialId: z.string().describe("The provider's id: a Docker Hub organization access token id, an ACR token name"),
  scopes: z.array(z.string()),
  issuanceId: z.string(),
  dockerConfig: z.object({ auths: z.record(z.string(), z.object({ auth: z.string().describe('base64 of username:password') })) }),
});

const seconds = (expiresAt: Date) => ({
  expiresAt: expiresAt.toISOString().replace(/\.\d{3}Z$/, 'Z'),
  expiresIn: Math.max(0, Math.floor((expiresAt.getTime() - Date.now()) / 1000)),
});

/** Either answer, for the OpenAPI document. */
export const tokenAnswerSchema = z.union([tokenResponseSchema, loginResponseSchema]);

export function tokenAnswer(issued: IssuedToken, issuanceId: string): z.infer<typeof tokenResponseSchema> {
  return {
    registry: issued.entry.host,
    token: issued.token,
    ...seconds(issued.expiresAt),
    scopes: issued.scopes,
    issuanceId,
    dockerConfig: { auths: { [issued.entry.dockerConfigKey]: { registrytoken: issued.token } } },
  };
}

export function loginAnswer(login: IssuedLogin, issuanceId: string): z.infer<typeof loginResponseSchema> {
  return {
    registry: login.entry.host,
    form: 'login',
    username: login.username,
    password: login.password,
    ...seconds(login.expiresAt),
    credentialId: login.credentialId,
    scopes: login.scopes,
    issuanceId,
    dockerConfig: { auths: { [login.entry.dockerConfigKey]: { auth: Buffer.from(`${login.username}:${login.password}`).toString('base64') } } },
  };
}
