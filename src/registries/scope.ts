/**
 * Repository scopes in the distribution token grammar: `repository:<name>:<action>[,<action>]`.
 * The broker accepts only the `repository` resource type and the actions below; `*` is refused so
 * that a grant can never be widened by a wildcard action.
 */
export const ACTIONS = ['pull', 'push', 'delete'] as const;
export type Action = (typeof ACTIONS)[number];

export interface RepositoryScope {
  repository: string;
  actions: Action[];
}

/** Distribution's limit on a repository name. */
export const MAX_REPOSITORY_LENGTH = 255;

// The OCI distribution spec's name grammar; a constant, never built from input.
const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const REPOSITORY_NAME = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);

export function isRepositoryName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_REPOSITORY_LENGTH && REPOSITORY_NAME.test(name);
}

function isAction(value: string): value is Action {
  return (ACTIONS as readonly string[]).includes(value);
}

/** Canonical order so that equal scope sets have equal strings (audit, reuse keys, responses). */
export function sortActions(actions: Iterable<Action>): Action[] {
  const set = new Set(actions);
  return ACTIONS.filter((action) => set.has(action));
}

export type ScopeParseResult = { ok: true; scope: RepositoryScope } | { ok: false; message: string };

export function parseScope(text: string): ScopeParseResult {
  const parts = text.split(':');
  if (parts.length !== 3) {
    return { ok: false, message: 'must have the form repository:<name>:<action>[,<action>]' };
  }
  const [type, name, actionList] = parts as [string, string, string];
  if (type !== 'repository') return { ok: false, message: `resource type "${type.slice(0, 40)}" is not supported; use "repository"` };
  if (name.length > MAX_REPOSITORY_LENGTH) {
    return { ok: false, message: `repository name is longer than ${MAX_REPOSITORY_LENGTH} characters` };
  }
  if (!isRepositoryName(name)) {
    return {
      ok: false,
      message: 'repository name must be lowercase letters and digits, separated by ".", "_", "__", "-" or "/" (OCI name grammar)',
    };
  }
  const actions = actionList.split(',');
  const unknown = actions.filter((action) => !isAction(action));
  if (unknown.length > 0) {
    return { ok: false, message: `unknown action "${unknown[0]!.slice(0, 40)}"; allowed: ${ACTIONS.join(', ')}` };
  }
  return { ok: true, scope: { repository: name, actions: sortActions(actions as Action[]) } };
}

export function formatScope(scope: RepositoryScope): string {
  return `repository:${scope.repository}:${scope.actions.join(',')}`;
}

/** Merges scopes naming the same repository and orders the result, so the set has one canonical form. */
export function normalizeScopes(scopes: RepositoryScope[]): RepositoryScope[] {
  const byRepository = new Map<string, Set<Action>>();
  for (const scope of scopes) {
    const actions = byRepository.get(scope.repository) ?? new Set<Action>();
    for (const action of scope.actions) actions.add(action);
    byRepository.set(scope.repository, actions);
  }
  return [...byRepository.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([repository, actions]) => ({ repository, actions: sortActions(actions) }));
}
