import type { LoginPolicy } from '../../registries/catalog.js';
import type { RepositoryScope } from '../../registries/scope.js';

export interface LoginCreateRequest {
  /** The issuance that asked first: the provider's label/name carries it, so its logs lead to our audit. */
  issuanceId: string;
  scopes: RepositoryScope[];
  expiresAt: Date;
  /** Who it is for, for the provider's own listing. Identifiers only. */
  description: string;
}

export interface CreatedLogin {
  credentialId: string;
  username: string;
  password: string;
  /** What the provider reports, never what was asked. */
  expiresAt: Date;
}

/** A credential to delete: `credentialId` when the create answer arrived, else found by its issuance id. */
export interface LoginRef {
  issuanceId: string;
  credentialId: string | undefined;
}

/**
 * One way of making short-lived, repository-scoped login credentials at a registry. Failures are
 * problems (src/credentials/login/loginProblems.ts): refused 502, down 503, timeout 504.
 */
export interface LoginProvider {
  readonly name: LoginPolicy['provider'];
  /** Throws a 400 problem for a scope set the provider cannot grant exactly, before anything is created. */
  check(scopes: RepositoryScope[]): void;
  create(request: LoginCreateRequest): Promise<CreatedLogin>;
  /** Deleting what is already gone succeeds, so cleanup can repeat after a crash. */
  delete(ref: LoginRef): Promise<void>;
}

export function loginLabel(issuanceId: string): string {
  return `registry-broker ${issuanceId}`;
}
