import type { AdminContext } from './admin.js';
import { print, since } from './adminRecords.js';
import { CliError } from './brokerClient.js';
import { JSON_FLAG, type Command } from './command.js';

/** `admin explain`: why an identity would get (or did not get) these scopes, as a short table. */
interface Explanation {
  registry: string;
  allowed: boolean;
  blocked: boolean;
  block?: { blockedAt: string; reason: string };
  actions: { repository: string; action: string; allowed: boolean; grantId?: string; lifetimeCapSeconds?: number; grants?: { id: string; reason: string }[] }[];
  replayed?: { requestId: string; time: string; outcome: string; reason: string };
}

function why(row: Explanation['actions'][number]): string {
  if (row.allowed) return `grant ${row.grantId}${row.lifetimeCapSeconds === undefined ? '' : ` (at most ${row.lifetimeCapSeconds} s)`}`;
  if (!row.grants?.length) return 'no grant on this registry';
  return row.grants.map((grant) => `${grant.id}: ${grant.reason}`).join(', ');
}

export const EXPLAIN_COMMAND: Command<AdminContext> = {
  words: 'explain',
  synopsis: '--object-id ID|--app-id ID --registry HOST --scope SCOPE… | --request-id ID [--since 24h]',
  summary: 'Why an identity gets, or does not get, these scopes; nothing is issued.',
  details:
    'Per requested action: the grant that allows it, or for each grant on the registry the first reason it does not apply (subject, repository, action, disabled, expired), and any block. --request-id replays the audited token request a 403 named.',
  flags: [
    { name: 'object-id', value: 'ID', text: "the identity's principal ID" },
    { name: 'app-id', value: 'ID', text: "the identity's client ID" },
    { name: 'tenant-id', value: 'ID', text: 'its tenant' },
    { name: 'registry', value: 'HOST', text: 'the registry asked for' },
    { name: 'scope', value: 'SCOPE', multiple: true, text: 'repository:<name>:<actions>, as the caller asked' },
    { name: 'request-id', value: 'ID', text: 'replay this audited token request instead' },
    { name: 'since', value: 'DURATION', text: 'with --request-id: how far back it was, e.g. 2h, 3d (default 24h)' },
    JSON_FLAG,
  ],
  run: async (values, _args, context) => {
    let body: Record<string, unknown>;
    if (values['request-id']) {
      body = { requestId: values['request-id'], from: since(values.since as string | undefined, '24h') };
    } else {
      const subject = Object.fromEntries(
        (['object-id', 'app-id', 'tenant-id'] as const).flatMap((flag) => (values[flag] ? [[flag.replace(/-(\w)/, (_m, c: string) => c.toUpperCase()), values[flag]]] : [])),
      );
      if (!subject.objectId && !subject.appId) throw new CliError('explain needs --object-id or --app-id (or --request-id)', 2);
      if (!values.registry || !(values.scope as string[] | undefined)?.length) throw new CliError('explain needs --registry and --scope', 2);
      body = { subject, registry: values.registry, scopes: values.scope };
    }
    const session = await context.connect(values);
    const answer = await session.call<Explanation>('/v1/admin/explain', { method: 'POST', body });
    if (!values.json) {
      if (answer.replayed) process.stdout.write(`request ${answer.replayed.requestId} at ${answer.replayed.time}: ${answer.replayed.outcome} (${answer.replayed.reason})\n`);
      if (answer.block) process.stdout.write(`blocked since ${answer.block.blockedAt}: ${answer.block.reason}\n`);
    }
    const rows = answer.actions.map((row) => ({ ...row, allowed: row.allowed ? 'yes' : 'no', why: why(row) }));
    print(values, answer, rows, ['repository', 'action', 'allowed', 'why']);
    // A workload's token carries both IDs, and a grant may name either: asked with one, a grant that
    // names subjects only by the other kind does not apply, though the real request might get it.
    const halfSubject = !values['request-id'] && (!values['object-id'] || !values['app-id']);
    const bySubject = new Set(answer.actions.flatMap((row) => (row.grants ?? []).filter((grant) => grant.reason === 'subject').map((grant) => grant.id)));
    if (!values.json && halfSubject && bySubject.size > 0) {
      const other = values['object-id'] ? 'appId' : 'objectId';
      const { grants } = await session.call<{ grants: { id: string; subjects: Record<string, string>[] }[] }>('/v1/admin/grants');
      const unchecked = grants.filter((grant) => bySubject.has(grant.id) && grant.subjects.some((subject) => other in subject)).map((grant) => grant.id);
      if (unchecked.length > 0) {
        const flag = other === 'appId' ? '--app-id' : '--object-id';
        process.stdout.write(`${unchecked.join(', ')} name${unchecked.length === 1 ? 's' : ''} subjects by ${other === 'appId' ? 'client (app) ID' : 'object ID'}, which this question did not give: add ${flag} to check ${unchecked.length === 1 ? 'it' : 'them'}\n`);
      }
    }
  },
};
