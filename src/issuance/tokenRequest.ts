import { LRUCache } from 'lru-cache';
import * as z from 'zod';
import { parseJson, validated } from '../http/body.js';
import { BrokerError, errors } from '../errors.js';
import { normalizeScopes, parseScope, type RepositoryScope } from '../registries/scope.js';

/** The body of POST /v1/tokens, validated at the edge. */
export const tokenRequestSchema = z.strictObject({
  registry: z.string().min(1).max(253).describe('Registry host as users type it: docker.io, ghcr.io, myreg.azurecr.io'),
  scopes: z
    .array(z.string().max(512))
    .min(1)
    .max(20)
    .transform((texts, ctx) => {
      const scopes: RepositoryScope[] = [];
      texts.forEach((text, index) => {
        const result = parseScope(text);
        if (result.ok) scopes.push(result.scope);
        else ctx.addIssue({ code: 'custom', path: [index], message: result.message });
      });
      return normalizeScopes(scopes);
    })
    .describe('repository:<name>:<action>[,<action>] with actions pull, push, delete'),
  form: z.enum(['token', 'login']).default('token').describe('token: a registry token (default); login: a short-lived username/password clients mint registry tokens with (docs/credential-forms.md)'),
  ttlSeconds: z.number().int().min(60).max(86_400).optional().describe('Form login only: the lifetime asked for (default LOGIN_TTL_SECONDS); MAX_TTL_SECONDS and the grants cap it'),
}).refine((body) => body.form === 'login' || body.ttlSeconds === undefined, { path: ['ttlSeconds'], message: 'applies to form "login" only: a registry token lives as long as the registry says' });

export type TokenRequest = z.infer<typeof tokenRequestSchema>;

/** What the caller asked for, as far as it could be read: the audit records it even when it is invalid. */
export interface AskedFor {
  registry: string | undefined;
  scopes: string[];
}

export type ReadTokenRequest = { ok: true; request: TokenRequest; asked: AskedFor } | { ok: false; problem: BrokerError; asked: AskedFor };

const NOTHING_READABLE: AskedFor = { registry: undefined, scopes: [] };

function askedFor(value: unknown): AskedFor {
  if (typeof value !== 'object' || value === null) return NOTHING_READABLE;
  const { registry, scopes } = value as { registry?: unknown; scopes?: unknown };
  return {
    registry: typeof registry === 'string' ? registry.slice(0, 253) : undefined,
    scopes: Array.isArray(scopes) ? scopes.slice(0, 20).map((scope) => String(scope).slice(0, 300)) : [],
  };
}

type Readable = Extract<ReadTokenRequest, { ok: true }>;

/**
 * Valid bodies by their text: a build sends the same body again and again, and each is validated
 * once, not on every request (issue 14). Bounded by count and by characters held; only bodies that
 * passed are kept, frozen, since every request with that text shares the one result.
 */
const MAX_KEPT_BODY_CHARS = 2_048;
const validBodies = new LRUCache<string, Readable>({ max: 1_024, maxSize: 1_000_000, sizeCalculation: (_, text) => text.length });

function frozen(read: Readable): Readable {
  for (const scope of read.request.scopes) Object.freeze(Object.freeze(scope).actions);
  Object.freeze(Object.freeze(read.request).scopes);
  Object.freeze(Object.freeze(read.asked).scopes);
  return Object.freeze(read);
}

/** Reads and validates the body once; whatever happens, says what was asked. */
export async function readTokenRequest(text: () => Promise<string>): Promise<ReadTokenRequest> {
  let body: string;
  let value: unknown;
  try {
    body = await text();
    const known = validBodies.get(body);
    if (known) return known;
    value = parseJson(body);
  } catch (error) {
    const problem = error instanceof BrokerError ? error : errors.badRequest('The body could not be read.');
    return { ok: false, problem, asked: NOTHING_READABLE };
  }
  const asked = askedFor(value);
  let read: Readable;
  try {
    read = { ok: true, request: validated(value, tokenRequestSchema), asked };
  } catch (error) {
    return { ok: false, problem: error as BrokerError, asked };
  }
  if (body.length <= MAX_KEPT_BODY_CHARS) validBodies.set(body, frozen(read));
  return read;
}
