import * as z from 'zod';
import { errorSummary } from '../../logger.js';
import type { RegistryEntry } from '../../registries/catalog.js';
import type { CredentialVault, CurrentSecret } from './credentialVault.js';
import { DAY_MS, dueAt } from './rotationSchedule.js';
import type { RotationState, RotationStateStore, RotationStep } from './rotationState.js';

/** What the admin API reports per stored credential: versions, age, rotation state. Never a value. Spelled once, here. */
export const credentialStatusSchema = z.object({
  registry: z.string(),
  kind: z.string(),
  provider: z.string(),
  credentialSecret: z.string().optional().describe('the Key Vault secret name, never its value'),
  currentVersion: z.string().optional(),
  ageDays: z.number().optional(),
  expiresOn: z.string().optional(),
  lastRotatedAt: z.string().optional(),
  nextDueAt: z.string().optional(),
  state: z.string().describe('the rotation step: idle, creating, created, verified or stored'),
  lastError: z.string().optional(),
  warning: z.string().optional(),
});

export type CredentialStatus = Omit<z.infer<typeof credentialStatusSchema>, 'state'> & { state: RotationStep };

export async function credentialStatuses(
  entries: RegistryEntry[],
  vault: CredentialVault,
  rotations: RotationStateStore,
  now: number,
  abortSignal: AbortSignal,
): Promise<CredentialStatus[]> {
  // Read together: with one budget for the whole listing, one slow entry must not starve the others.
  return Promise.all(entries.map((entry) => credentialStatus(entry, vault, rotations, now, abortSignal)));
}

async function credentialStatus(entry: RegistryEntry, vault: CredentialVault, rotations: RotationStateStore, now: number, abortSignal: AbortSignal): Promise<CredentialStatus> {
  const base = {
    registry: entry.host,
    kind: entry.kind,
    provider: entry.rotation?.provider ?? (entry.kind === 'acr' ? 'managed-identity' : 'none'),
    credentialSecret: entry.credentialSecret,
  };
  if (!entry.credentialSecret) return { ...base, state: 'idle' };
  let secret: CurrentSecret;
  let state: RotationState;
  try {
    [secret, { state }] = await Promise.all([vault.current(entry.credentialSecret, abortSignal), rotations.read(entry.host, abortSignal)]);
  } catch (error) {
    // One unreadable secret must not hide the others' state.
    return { ...base, state: 'idle', warning: `cannot read: ${errorSummary(error)}` };
  }
  const since = (secret.rotatedAt ?? secret.createdOn)?.getTime();
  const policy = entry.rotation;
  const nextDue = policy ? dueAt(policy, secret) : undefined;
  const expiringSoon = secret.expiresOn && secret.expiresOn.getTime() - now <= (policy?.rotateBeforeExpiryDays ?? 7) * DAY_MS;
  return {
    ...base,
    currentVersion: secret.version,
    ageDays: since === undefined ? undefined : Math.floor((now - since) / DAY_MS),
    expiresOn: secret.expiresOn?.toISOString(),
    lastRotatedAt: state.lastRotatedAt ? new Date(state.lastRotatedAt).toISOString() : secret.rotatedAt?.toISOString(),
    nextDueAt: nextDue === undefined ? undefined : new Date(nextDue).toISOString(),
    state: state.step,
    lastError: state.lastError || undefined,
    warning: expiringSoon ? `expires ${secret.expiresOn!.toISOString()}${policy?.provider === 'none' || !policy ? ': replace it by hand' : ''}` : undefined,
  };
}
