import { decodeJwt } from 'jose';
import { formatScope, type Action, type RepositoryScope } from './scope.js';

/**
 * What an upstream token really grants. Docker Hub and distribution's token servers do not refuse a
 * scope the account lacks: they leave it out of the token. The broker reads the token's `access`
 * claim, where it has one, so that it never audits as issued a token that cannot do what was granted.
 */
export type UpstreamScopeCheck = { kind: 'verified' } | { kind: 'opaque' } | { kind: 'narrowed'; withheld: string[] };

interface AccessEntry {
  type?: unknown;
  name?: unknown;
  actions?: unknown;
}

function accessClaim(token: string): AccessEntry[] | undefined {
  try {
    const { access } = decodeJwt(token);
    return Array.isArray(access) ? (access as AccessEntry[]) : undefined;
  } catch {
    return undefined;
  }
}

function covers(access: AccessEntry[], repository: string, action: Action): boolean {
  return access.some(
    (entry) =>
      entry.type === 'repository' &&
      entry.name === repository &&
      Array.isArray(entry.actions) &&
      (entry.actions.includes(action) || entry.actions.includes('*')),
  );
}

export function checkUpstreamScope(token: string, scopes: RepositoryScope[]): UpstreamScopeCheck {
  const access = accessClaim(token);
  if (!access) return { kind: 'opaque' };
  const withheld = scopes
    .map((scope) => ({ repository: scope.repository, actions: scope.actions.filter((action) => !covers(access, scope.repository, action)) }))
    .filter((scope) => scope.actions.length > 0)
    .map(formatScope);
  return withheld.length === 0 ? { kind: 'verified' } : { kind: 'narrowed', withheld };
}
