import type { z } from 'zod';
import { problems, type FieldError } from './problem.js';

export function fieldErrors(issues: z.core.$ZodIssue[]): FieldError[] {
  return issues.slice(0, 20).map((issue) => ({
    path: issue.path.map(String).join('.') || '(body)',
    message: issue.message,
  }));
}

/** Parses and validates a JSON body at the edge; everything past this trusts the types. */
export function parseBody<T extends z.ZodType>(text: string, schema: T): z.infer<T> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw problems.badRequest('The body is not valid JSON.');
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const errors = fieldErrors(parsed.error.issues);
    throw problems.badRequest(errors.map((e) => `${e.path}: ${e.message}`).join('; '), errors);
  }
  return parsed.data;
}
