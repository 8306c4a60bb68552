import type { CallerIdentity } from '../auth/callerToken.js';
import { formatScope, type Action, type RepositoryScope } from '../registries/scope.js';
import type { Grant } from './model.js';
import { matchesRepository } from './pattern.js';

export type Decision =
  | { allowed: true; grantIds: string[]; maxTtlSeconds: number | undefined }
  | { allowed: false; notGranted: string[] };

export function subjectMatches(grant: Grant, caller: Pick<CallerIdentity, 'objectId' | 'appId'>): boolean {
  return grant.subjects.some((subject) =>
    'objectId' in subject ? subject.objectId === caller.objectId : caller.appId !== undefined && subject.appId === caller.appId.toLowerCase(),
  );
}

export function isActive(grant: Grant, now: Date): boolean {
  return grant.enabled && (grant.notAfter === undefined || Date.parse(grant.notAfter) > now.getTime());
}

/** The longest a credential issued under this grant may live: its maxTtlSeconds, and never past its notAfter. */
export function lifetimeCapSeconds(grant: Grant, now: Date): number {
  const untilEnd = grant.notAfter === undefined ? Infinity : Math.floor((Date.parse(grant.notAfter) - now.getTime()) / 1000);
  return Math.min(grant.maxTtlSeconds ?? Infinity, untilEnd);
}

/**
 * All-or-nothing: every requested action on every repository must be covered by some active grant
 * for this caller and registry; otherwise the answer lists exactly what is missing. Deny by default.
 */
export function decide(caller: CallerIdentity, registry: string, scopes: RepositoryScope[], grants: Grant[], now: Date): Decision {
  // Where several grants cover an action, use the one allowing the longest lifetime: each alone suffices.
  const applicable: { grant: Grant; cap: number }[] = [];
  for (const grant of grants) {
    if (grant.registry === registry && isActive(grant, now) && subjectMatches(grant, caller)) applicable.push({ grant, cap: lifetimeCapSeconds(grant, now) });
  }
  applicable.sort((a, b) => b.cap - a.cap);

  const used = new Map<string, number>();
  const notGranted: string[] = [];
  for (const scope of scopes) {
    const missing: Action[] = [];
    for (const action of scope.actions) {
      const covering = applicable.find(({ grant }) => grant.actions.includes(action) && grant.repositories.some((p) => matchesRepository(p, scope.repository)));
      if (covering) used.set(covering.grant.id, covering.cap);
      else missing.push(action);
    }
    if (missing.length > 0) notGranted.push(formatScope({ repository: scope.repository, actions: missing }));
  }
  if (notGranted.length > 0) return { allowed: false, notGranted };
  let maxTtlSeconds: number | undefined;
  for (const cap of used.values()) if (cap !== Infinity) maxTtlSeconds = Math.min(maxTtlSeconds ?? Infinity, cap);
  return { allowed: true, grantIds: [...used.keys()].sort(), maxTtlSeconds };
}
