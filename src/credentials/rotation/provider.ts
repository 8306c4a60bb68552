import type { CallBudget } from './callBudget.js';

/** A credential a provider created upstream. `ref` names it for revocation (a token UUID, a password slot). */
export interface CreatedCredential {
  username: string;
  password: string;
  ref: string;
}

export interface CreateRequest {
  /** Names what is made upstream after the attempt that made it (see `rotationLabel`). */
  label: string;
  /** The ref of the credential in use now, if the broker created it. */
  currentRef: string | undefined;
  expiresAt: Date;
}

/**
 * One way of replacing a stored credential upstream. Every method is safe to call again after a
 * crash: `revokeStray` removes what an interrupted attempt left under its label, and `revoke` of
 * something already gone succeeds. Every call ends within its budget.
 */
export interface RotationProvider {
  create(request: CreateRequest, budget: CallBudget): Promise<CreatedCredential>;
  revoke(ref: string, budget: CallBudget): Promise<void>;
  /** Revokes every credential carrying `label`, except those in `keep`. */
  revokeStray(label: string, keep: readonly string[], budget: CallBudget): Promise<void>;
}

/**
 * One label per attempt, not per rotation: an instance that stalled and lost the rotation can then
 * only ever match what its own attempt made. Rows from before attempts were recorded have none.
 */
export function rotationLabel(rotationId: string, attemptId: string): string {
  return attemptId ? `registry-broker ${rotationId} ${attemptId}` : `registry-broker ${rotationId}`;
}
