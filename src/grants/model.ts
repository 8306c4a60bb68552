import * as z from 'zod';
import { registryHostSchema } from '../registries/catalog.js';
import { ACTIONS, sortActions } from '../registries/scope.js';
import { isRepositoryPattern } from './pattern.js';

const guid = z.guid().transform((id) => id.toLowerCase());

export const grantIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'must be 1–64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit');

export const subjectSchema = z.union([
  z.strictObject({ objectId: guid }),
  z.strictObject({ appId: guid }),
]);

export const grantBodySchema = z.strictObject({
  id: grantIdSchema,
  description: z.string().max(500).optional(),
  subjects: z.array(subjectSchema).min(1).max(100),
  registry: registryHostSchema,
  repositories: z
    .array(z.string().refine(isRepositoryPattern, 'must be a repository name or pattern ("*" within a segment, "**" across segments)'))
    .min(1)
    .max(100),
  actions: z
    .array(z.enum(ACTIONS))
    .min(1)
    .transform((actions) => sortActions(actions)),
  maxTtlSeconds: z.number().int().min(60).max(86_400).optional(),
  notAfter: z.iso.datetime({ offset: true }).optional(),
  enabled: z.boolean().default(true),
});

export type Grant = z.infer<typeof grantBodySchema>;
export type Subject = z.infer<typeof subjectSchema>;
