import type { z } from 'zod';
import { errors, type FieldError } from '../errors.js';

function fieldErrors(issues: z.core.$ZodIssue[], whole: string): FieldError[] {
  return issues.slice(0, 20).map((issue) => ({
    path: issue.path.map(String).join('.') || whole,
    message: issue.message,
  }));
}

/** `whole`: what an issue without a path is about, `(body)` or `(query)`. */
export function validated<T extends z.ZodType>(value: unknown, schema: T, whole = '(body)'): z.infer<T> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const found = fieldErrors(parsed.error.issues, whole);
  throw errors.badRequest(found.map((e) => `${e.path}: ${e.message}`).join('; '), found);
}

/** Half of a UTF-16 surrogate pair, alone: JSON may escape one (`"\ud800"`), but it is no character. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

class IllFormed extends Error {}

/**
 * JSON text as a value, refusing strings (and names) that are not Unicode. Kept, such a string would
 * come back in answers and audit searches as an escape that strict JSON readers (jq) refuse, so one
 * caller could make a whole page of the audit unreadable.
 */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text, (name, value: unknown) => {
      if (LONE_SURROGATE.test(name) || (typeof value === 'string' && LONE_SURROGATE.test(value))) throw new IllFormed();
      return value;
    });
  } catch (error) {
    throw errors.badRequest(error instanceof IllFormed ? 'The body holds a string that is not valid Unicode (a lone surrogate escape).' : 'The body is not valid JSON.');
  }
}

/** Parses and validates a JSON body at the edge; everything past this trusts the types. */
export function parseBody<T extends z.ZodType>(text: string, schema: T): z.infer<T> {
  return validated(parseJson(text), schema);
}

/** Validates query parameters at the edge; a repeated parameter is refused rather than guessed at. */
export function parseQuery<T extends z.ZodType>(url: URL, schema: T): z.infer<T> {
  const values: Record<string, string> = {};
  for (const [name, value] of url.searchParams) {
    if (name in values) throw errors.badRequest(`Query parameter "${name.slice(0, 40)}" is given twice.`);
    values[name] = value;
  }
  return validated(values, schema, '(query)');
}
