import { grantBodySchema, type Grant } from '../grants/model.js';
import { BrokerRefused, CliError, type BrokerSession } from './brokerClient.js';
import { grantPath } from './adminGrants.js';

/**
 * What it takes to make the broker's grants equal the file's: creates, updates and (with --prune)
 * deletes, each carrying the ETag it was planned against, so `apply` never overwrites a change it
 * did not see.
 */
export type GrantChange =
  | { kind: 'create'; id: string; after: Grant }
  | { kind: 'update'; id: string; before: Grant; after: Grant; etag: string; fields: string[] }
  | { kind: 'delete'; id: string; before: Grant; etag: string };

export interface Plan {
  changes: GrantChange[];
  /** On the broker, not in the file, kept because --prune was not given. */
  kept: string[];
}

const FIELDS = Object.keys(grantBodySchema.shape) as (keyof Grant)[];

/** The broker's key order, so an export reads the same every time and diffs stay small. */
export function canonical(grant: Grant): Grant {
  const parsed = grantBodySchema.parse(grant);
  return Object.fromEntries(FIELDS.filter((field) => parsed[field] !== undefined).map((field) => [field, parsed[field]])) as Grant;
}

function changedFields(before: Grant, after: Grant): string[] {
  const a = canonical(before);
  const b = canonical(after);
  return FIELDS.filter((field) => JSON.stringify(a[field]) !== JSON.stringify(b[field]));
}

async function read(session: BrokerSession, id: string): Promise<{ grant: Grant; etag: string }> {
  const answer = await session.request<Grant>(grantPath(id));
  return { grant: answer.body, etag: answer.headers.get('etag') ?? '' };
}

export async function planGrants(session: BrokerSession, desired: Grant[], prune: boolean): Promise<Plan> {
  const { grants } = await session.call<{ grants: Grant[] }>('/v1/admin/grants');
  const current = new Map(grants.map((grant) => [grant.id, grant]));
  const changes: GrantChange[] = [];
  for (const after of desired) {
    const listed = current.get(after.id);
    if (!listed) changes.push({ kind: 'create', id: after.id, after });
    else if (changedFields(listed, after).length > 0) {
      const { grant: before, etag } = await read(session, after.id);
      const fields = changedFields(before, after);
      if (fields.length > 0) changes.push({ kind: 'update', id: after.id, before, after, etag, fields });
    }
  }
  const wanted = new Set(desired.map((grant) => grant.id));
  const extra = grants.filter((grant) => !wanted.has(grant.id)).map((grant) => grant.id);
  if (!prune) return { changes, kept: extra };
  for (const id of extra) {
    const { grant: before, etag } = await read(session, id);
    changes.push({ kind: 'delete', id, before, etag });
  }
  return { changes, kept: [] };
}

function show(value: unknown): string {
  return value === undefined ? '(none)' : JSON.stringify(value);
}

export function describePlan(plan: Plan): string {
  const lines = plan.changes.map((change) => {
    if (change.kind === 'create') return `+ create ${change.id}`;
    if (change.kind === 'delete') return `- delete ${change.id}`;
    const details = change.fields.map((field) => `    ${field}: ${show(change.before[field as keyof Grant])} → ${show(change.after[field as keyof Grant])}`);
    return [`~ update ${change.id}`, ...details].join('\n');
  });
  if (plan.kept.length > 0) lines.push(`  (not in the file, kept; --prune deletes them: ${plan.kept.join(', ')})`);
  const count = (kind: GrantChange['kind']) => plan.changes.filter((change) => change.kind === kind).length;
  lines.push(`plan: ${count('create')} to create, ${count('update')} to update, ${count('delete')} to delete`);
  return `${lines.join('\n')}\n`;
}

function conflict(change: GrantChange, status: number): string | undefined {
  if (change.kind === 'create' && status === 409) return `grant "${change.id}" was created on the broker after the plan was made`;
  if (change.kind !== 'create' && status === 412) return `grant "${change.id}" was changed on the broker after the plan was made (its ETag no longer matches)`;
  if (change.kind !== 'create' && status === 404) return `grant "${change.id}" was deleted on the broker after the plan was made`;
  return undefined;
}

/**
 * Applies the plan one grant at a time; each call is one admin-audited change. The first refusal
 * stops the run: what was applied stays applied, nothing after it is tried.
 */
export async function applyPlan(session: BrokerSession, plan: Plan, report: (line: string) => void): Promise<void> {
  for (const [index, change] of plan.changes.entries()) {
    try {
      if (change.kind === 'create') await session.call('/v1/admin/grants', { method: 'POST', body: change.after });
      if (change.kind === 'update') await session.call(grantPath(change.id), { method: 'PUT', body: change.after, headers: { 'If-Match': change.etag } });
      if (change.kind === 'delete') await session.call(grantPath(change.id), { method: 'DELETE', headers: { 'If-Match': change.etag } });
    } catch (error) {
      const left = plan.changes.length - index;
      const progress = `${index} of ${plan.changes.length} changes applied, ${left} not tried`;
      const reason = error instanceof BrokerRefused ? conflict(change, error.status) : undefined;
      if (reason) throw new CliError(`conflict: ${reason}; stopped (${progress}). Run plan again to see the broker's grants now.`);
      throw new CliError(`stopped at ${change.kind} ${change.id} (${progress}): ${(error as Error).message}`);
    }
    report(`${change.kind === 'create' ? 'created' : change.kind === 'update' ? 'updated' : 'deleted'} ${change.id}`);
  }
}
