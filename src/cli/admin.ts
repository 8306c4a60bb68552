import { DefaultAzureCredential } from '@azure/identity';
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { BROKER_OPTIONS, brokerTarget, callBroker, callerToken, CliError, requestBroker } from './brokerClient.js';
import { table } from './table.js';

/**
 * `registry-broker admin …`: the operator's side. The token comes from DefaultAzureCredential — the
 * operator's `az login` on a laptop, a managed identity in automation — and must carry the broker's
 * admin app role.
 */
export const ADMIN_USAGE = `usage: registry-broker admin <command> [options]

commands:
  grants list | show <id> | add | update <id> | rm <id>
  issuances [--since 1h] [--object-id ID] [--registry HOST] [--repository NAME] [--outcome issued|denied|failed] [--limit N]
  block <object-id> --reason TEXT      unblock <object-id>
  credentials                          rotate <registry>
  audit [--since 24h]

grant fields (add, update):
  --file grant.json | --id ID --registry HOST --repository PATTERN… --action pull|push|delete…
  --object-id ID… --app-id ID… [--description TEXT] [--max-ttl SECONDS] [--not-after ISO] [--disabled]

options: --broker URL (REGISTRY_BROKER_URL)  --audience URI (REGISTRY_BROKER_AUDIENCE)  --json
`;

const SINCE = /^(\d+)([mhd])$/;
const UNIT_MS = { m: 60_000, h: 3600_000, d: 86_400_000 } as const;

function since(text: string | undefined, fallback: string): string {
  const match = SINCE.exec(text ?? fallback);
  if (!match) throw new CliError(`--since takes a duration like 30m, 1h or 7d, not "${text}"`, 2);
  return new Date(Date.now() - Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]).toISOString();
}

type Values = Record<string, string | string[] | boolean | undefined>;

async function grantFromFlags(values: Values, base: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  if (typeof values.file === 'string') return JSON.parse(await readFile(values.file, 'utf8')) as Record<string, unknown>;
  const list = (name: string) => (values[name] as string[] | undefined) ?? [];
  const subjects = [...list('object-id').map((objectId) => ({ objectId })), ...list('app-id').map((appId) => ({ appId }))];
  const grant: Record<string, unknown> = { ...base };
  if (values.id) grant.id = values.id;
  if (values.description) grant.description = values.description;
  if (values.registry) grant.registry = values.registry;
  if (list('repository').length) grant.repositories = list('repository');
  if (list('action').length) grant.actions = list('action');
  if (subjects.length) grant.subjects = subjects;
  if (values['max-ttl']) grant.maxTtlSeconds = Number(values['max-ttl']);
  if (values['not-after']) grant.notAfter = values['not-after'];
  if (values.disabled) grant.enabled = false;
  return grant;
}

function print(values: Values, data: unknown, rows: Record<string, unknown>[], columns: string[]): void {
  process.stdout.write(values.json ? `${JSON.stringify(data, null, 2)}\n` : table(rows, columns));
}

export async function runAdmin(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...BROKER_OPTIONS,
      since: { type: 'string' },
      'object-id': { type: 'string', multiple: true },
      'app-id': { type: 'string', multiple: true },
      registry: { type: 'string' },
      repository: { type: 'string', multiple: true },
      outcome: { type: 'string' },
      limit: { type: 'string' },
      reason: { type: 'string' },
      file: { type: 'string' },
      id: { type: 'string' },
      action: { type: 'string', multiple: true },
      description: { type: 'string' },
      'max-ttl': { type: 'string' },
      'not-after': { type: 'string' },
      disabled: { type: 'boolean' },
    },
  });
  const [command, sub, arg] = positionals;
  if (!command) {
    process.stdout.write(ADMIN_USAGE);
    return;
  }
  const { broker, audience } = brokerTarget(values, ADMIN_USAGE);
  const bearer = await callerToken(new DefaultAzureCredential(), audience);
  const call = <T>(path: string, init?: { method?: string; body?: unknown; headers?: Record<string, string> }) => callBroker<T>(broker, path, bearer, init);
  const grantPath = (id: string) => `/v1/admin/grants/${encodeURIComponent(id)}`;

  if (command === 'grants') {
    if (sub === 'list') {
      const { grants } = await call<{ grants: Record<string, unknown>[] }>('/v1/admin/grants');
      const rows = grants.map((g) => ({ ...g, subjects: (g.subjects as Record<string, string>[]).map((s) => s.objectId ?? `app:${s.appId}`) }));
      return print(values, { grants }, rows, ['id', 'registry', 'repositories', 'actions', 'subjects', 'enabled']);
    }
    if (sub === 'show' && arg) return print({ json: true }, await call(grantPath(arg)), [], []);
    if (sub === 'add') {
      const created = await call<Record<string, unknown>>('/v1/admin/grants', { method: 'POST', body: await grantFromFlags(values) });
      process.stderr.write(`registry-broker: created grant ${String(created.id)}\n`);
      return print({ json: true }, created, [], []);
    }
    if (sub === 'update' && arg) {
      const current = await requestBroker<Record<string, unknown>>(broker, grantPath(arg), bearer);
      const next = await grantFromFlags(values, current.body);
      const updated = await call<Record<string, unknown>>(grantPath(arg), { method: 'PUT', body: next, headers: { 'If-Match': current.headers.get('etag') ?? '' } });
      return print({ json: true }, updated, [], []);
    }
    if (sub === 'rm' && arg) {
      const current = await requestBroker(broker, grantPath(arg), bearer);
      await call(grantPath(arg), { method: 'DELETE', headers: { 'If-Match': current.headers.get('etag') ?? '' } });
      process.stderr.write(`registry-broker: removed grant ${arg}\n`);
      return;
    }
  }
  if (command === 'issuances') {
    const query = new URLSearchParams({ from: since(values.since as string | undefined, '1h') });
    if (values['object-id']) query.set('objectId', (values['object-id'] as string[])[0]!);
    if (values.registry) query.set('registry', values.registry as string);
    if (values.repository) query.set('repository', (values.repository as string[])[0]!);
    if (values.outcome) query.set('outcome', values.outcome as string);
    query.set('limit', (values.limit as string | undefined) ?? '100');
    const page = await call<{ issuances: Record<string, unknown>[]; nextCursor?: string }>(`/v1/admin/issuances?${query}`);
    const rows = page.issuances.map((i) => ({ ...i, scopes: (i.requestedScopes as string[]).join(' ') }));
    return print(values, page, rows, ['time', 'outcome', 'reason', 'objectId', 'registry', 'scopes', 'issuanceId']);
  }
  if (command === 'block' && sub) {
    if (!values.reason) throw new CliError('block needs --reason', 2);
    return print({ json: true }, await call(`/v1/admin/blocks/${encodeURIComponent(sub)}`, { method: 'PUT', body: { reason: values.reason } }), [], []);
  }
  if (command === 'unblock' && sub) {
    await call(`/v1/admin/blocks/${encodeURIComponent(sub)}`, { method: 'DELETE' });
    process.stderr.write(`registry-broker: unblocked ${sub}\n`);
    return;
  }
  if (command === 'credentials') {
    const { credentials } = await call<{ credentials: Record<string, unknown>[] }>('/v1/admin/credentials');
    return print(values, { credentials }, credentials, ['registry', 'provider', 'currentVersion', 'ageDays', 'state', 'nextDueAt', 'lastError', 'warning']);
  }
  if (command === 'rotate' && sub) {
    return print({ json: true }, await call(`/v1/admin/credentials/${encodeURIComponent(sub)}/rotate`, { method: 'POST' }), [], []);
  }
  if (command === 'audit') {
    const page = await call<{ entries: Record<string, unknown>[] }>(`/v1/admin/audit?from=${encodeURIComponent(since(values.since as string | undefined, '24h'))}`);
    return print(values, page, page.entries, ['time', 'action', 'target', 'outcome', 'objectId', 'detail']);
  }
  throw new CliError(`unknown admin command "${positionals.join(' ')}"\n\n${ADMIN_USAGE}`, 2);
}
