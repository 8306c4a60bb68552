import * as z from 'zod';

/**
 * What the broker answers on POST /api/v1/tokens (DESIGN.md §4, "Credential forms"), checked before
 * the CLI hands any of it on: a client that writes configs and caches must not trust a shape blindly.
 */
const common = {
  registry: z.string(),
  expiresAt: z.iso.datetime({ offset: true }),
  expiresIn: z.number(),
  scopes: z.array(z.string()),
  issuanceId: z.string(),
};

export const tokenAnswerSchema = z.looseObject({
  ...common,
  form: z.literal('token').optional(),
  token: z.string().min(1),
  dockerConfig: z.object({ auths: z.record(z.string(), z.object({ registrytoken: z.string() })) }),
});

export const loginAnswerSchema = z.looseObject({
  ...common,
  form: z.literal('login'),
  username: z.string(),
  password: z.string().min(1),
  credentialId: z.string().optional(),
  dockerConfig: z.object({ auths: z.record(z.string(), z.object({ auth: z.string() })) }),
});

export type TokenAnswer = z.infer<typeof tokenAnswerSchema>;
export type LoginAnswer = z.infer<typeof loginAnswerSchema>;
