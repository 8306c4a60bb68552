import * as z from 'zod';

/** The value of every stored registry credential: `{"username","password"}`, content type application/json. */
export const credentialValueSchema = z.object({ username: z.string().min(1), password: z.string().min(1) });
export type CredentialValue = z.infer<typeof credentialValueSchema>;

/**
 * Parses a secret's value. Never lets the value reach an error message: JSON.parse quotes the start
 * of what it could not read, and that would put part of a password into logs and records.
 */
export function parseCredentialValue(text: string | undefined, secretName: string): CredentialValue {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text ?? '');
  } catch {
    throw new Error(`secret "${secretName}" is not {"username","password"} JSON`);
  }
  const result = credentialValueSchema.safeParse(parsed);
  if (!result.success) throw new Error(`secret "${secretName}" is not {"username","password"} JSON`);
  return result.data;
}
