import type { RotationPolicy } from '../../registries/catalog.js';
import type { CurrentSecret } from './credentialVault.js';

/** When a stored credential is due, how long a new one lives, and how failed attempts back off. */
export const DAY_MS = 24 * 3600_000;
const BASE_BACKOFF_MS = 15 * 60_000;
const MAX_BACKOFF_MS = DAY_MS;

/** The earlier of "old enough" and "close to its expiry"; undefined when the secret tells neither. */
export function dueAt(policy: RotationPolicy, secret: CurrentSecret): number | undefined {
  const since = (secret.rotatedAt ?? secret.createdOn)?.getTime();
  const byAge = since === undefined ? undefined : since + policy.rotateAfterDays * DAY_MS;
  const byExpiry = secret.expiresOn === undefined ? undefined : secret.expiresOn.getTime() - policy.rotateBeforeExpiryDays * DAY_MS;
  const times = [byAge, byExpiry].filter((t): t is number => t !== undefined);
  return times.length > 0 ? Math.min(...times) : undefined;
}

/** A secret that tells nothing about its age is due: rotating it is how it gets one. */
export function isDue(policy: RotationPolicy, secret: CurrentSecret, now: number): boolean {
  const at = dueAt(policy, secret);
  return at === undefined || at <= now;
}

/** New credentials outlive two rotation periods, so one missed rotation never leaves a dead credential. */
export function newCredentialExpiry(policy: RotationPolicy, now: number): Date {
  return new Date(now + 2 * policy.rotateAfterDays * DAY_MS);
}

export function nextAttemptAt(attempts: number, now: number): number {
  return now + Math.min(BASE_BACKOFF_MS * 2 ** (attempts - 1), MAX_BACKOFF_MS);
}
