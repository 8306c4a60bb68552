import { ACTIONS, type Action, type RepositoryScope } from '../registries/scope.js';
import type { Block } from './blocks.js';
import { lifetimeCapSeconds, subjectMatches } from './decision.js';
import type { Grant } from './model.js';
import { matchesRepository } from './pattern.js';

/**
 * Why a decision came out as it did, for operators: per requested action, the grant that allows it
 * (and the lifetime cap it brings), or, for every grant on the registry, the first reason it does not
 * apply. The same rules as decide(), spelled out; nothing is issued.
 */
export const NOT_APPLYING = ['subject', 'repository', 'action', 'disabled', 'expired'] as const;
export type NotApplying = (typeof NOT_APPLYING)[number];

export interface ActionExplanation {
  repository: string;
  action: Action;
  allowed: boolean;
  /** The grant that allows it: of those that do, the one with the longest lifetime cap, as decide() picks. */
  grantId?: string;
  lifetimeCapSeconds?: number;
  /** When denied: every grant on the registry, and the first reason it does not apply. */
  grants?: { id: string; reason: NotApplying }[];
}

export interface Explanation {
  allowed: boolean;
  blocked: boolean;
  actions: ActionExplanation[];
  /** The cap an issuance would get (least of the allowing grants'), before MAX_TTL_SECONDS. */
  lifetimeCapSeconds?: number;
}

export interface ExplainSubject {
  objectId: string | undefined;
  appId: string | undefined;
}

function firstReason(grant: Grant, subject: ExplainSubject, repository: string, action: Action, now: Date): NotApplying | undefined {
  const caller = { objectId: subject.objectId ?? '', appId: subject.appId };
  if (!subjectMatches(grant, caller)) return 'subject';
  if (!grant.repositories.some((pattern) => matchesRepository(pattern, repository))) return 'repository';
  if (!grant.actions.includes(action)) return 'action';
  if (!grant.enabled) return 'disabled';
  if (grant.notAfter !== undefined && Date.parse(grant.notAfter) <= now.getTime()) return 'expired';
  return undefined;
}

export function explain(subject: ExplainSubject, registry: string, scopes: RepositoryScope[], grants: Grant[], block: Block | undefined, now: Date): Explanation {
  const onRegistry = grants.filter((grant) => grant.registry === registry).sort((a, b) => (a.id < b.id ? -1 : 1));
  const actions: ActionExplanation[] = [];
  const caps: number[] = [];
  for (const scope of scopes) {
    for (const action of ACTIONS.filter((candidate) => scope.actions.includes(candidate))) {
      const reasons = onRegistry.map((grant) => ({ grant, reason: firstReason(grant, subject, scope.repository, action, now) }));
      const allowing = reasons
        .filter((candidate) => candidate.reason === undefined)
        .map(({ grant }) => ({ grant, cap: lifetimeCapSeconds(grant, now) }))
        .sort((a, b) => b.cap - a.cap)[0];
      if (allowing && !block) {
        const cap = Number.isFinite(allowing.cap) ? allowing.cap : undefined;
        if (cap !== undefined) caps.push(cap);
        actions.push({ repository: scope.repository, action, allowed: true, grantId: allowing.grant.id, ...(cap !== undefined ? { lifetimeCapSeconds: cap } : {}) });
      } else {
        actions.push({
          repository: scope.repository,
          action,
          allowed: false,
          ...(allowing ? { grantId: allowing.grant.id } : {}),
          grants: reasons.filter((candidate) => candidate.reason !== undefined).map(({ grant, reason }) => ({ id: grant.id, reason: reason! })),
        });
      }
    }
  }
  const allowed = !block && actions.every((entry) => entry.allowed);
  return { allowed, blocked: block !== undefined, actions, ...(allowed && caps.length > 0 ? { lifetimeCapSeconds: Math.min(...caps) } : {}) };
}
