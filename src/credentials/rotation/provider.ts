/** A credential a provider created upstream. `ref` names it for revocation (a token UUID, a password slot). */
export interface CreatedCredential {
  username: string;
  password: string;
  ref: string;
}

export interface CreateRequest {
  rotationId: string;
  /** The ref of the credential in use now, if the broker created it. */
  currentRef: string | undefined;
  expiresAt: Date;
}

/**
 * One way of replacing a stored credential upstream. Every method is safe to call again after a
 * crash: `create` is preceded by `revokeStray`, which removes what an interrupted earlier attempt of
 * the same rotation may have created, and `revoke` of something already gone succeeds.
 */
export interface RotationProvider {
  create(request: CreateRequest): Promise<CreatedCredential>;
  revoke(ref: string): Promise<void>;
  revokeStray(rotationId: string, keep: string | undefined): Promise<void>;
}

export function rotationLabel(rotationId: string): string {
  return `registry-broker ${rotationId}`;
}
