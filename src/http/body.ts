import type { z } from 'zod';
import { errors, type FieldError } from '../errors.js';

function fieldErrors(issues: z.core.$ZodIssue[]): FieldError[] {
  return issues.slice(0, 20).map((issue) => ({
    path: issue.path.map(String).join('.') || '(body)',
    message: issue.message,
  }));
}

export function validated<T extends z.ZodType>(value: unknown, schema: T): z.infer<T> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const found = fieldErrors(parsed.error.issues);
  throw errors.badRequest(found.map((e) => `${e.path}: ${e.message}`).join('; '), found);
}

/** Parses and validates a JSON body at the edge; everything past this trusts the types. */
export function parseBody<T extends z.ZodType>(text: string, schema: T): z.infer<T> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw errors.badRequest('The body is not valid JSON.');
  }
  return validated(value, schema);
}

/** Validates query parameters at the edge; a repeated parameter is refused rather than guessed at. */
export function parseQuery<T extends z.ZodType>(url: URL, schema: T): z.infer<T> {
  const values: Record<string, string> = {};
  for (const [name, value] of url.searchParams) {
    if (name in values) throw errors.badRequest(`Query parameter "${name.slice(0, 40)}" is given twice.`);
    values[name] = value;
  }
  return validated(values, schema);
}
