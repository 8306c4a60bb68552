import { MAX_SEARCH_DAYS } from '../audit/partitioning.js';
import { CliError } from './brokerClient.js';
import { JSON_FLAG, type Command, type Values } from './command.js';
import type { AdminContext } from './admin.js';
import { allPages } from './pages.js';
import { table } from './table.js';

/** The admin commands that read the audit and act on identities and credentials. */
const SINCE = /^(\d+)([mhd])$/;
const UNIT_MS = { m: 60_000, h: 3600_000, d: 86_400_000 } as const;
/** How far back the admin searches reach: said here in the flag's own terms, not as the API's `from`. */
const MAX_SINCE_MS = MAX_SEARCH_DAYS * UNIT_MS.d;

/** `--since 7d` as the ISO time that long ago. */
export function since(text: string | undefined, fallback: string): string {
  const match = SINCE.exec(text ?? fallback);
  if (!match) throw new CliError(`--since takes a duration like 30m, 1h or 7d, not "${text}"`, 2);
  const back = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  if (back > MAX_SINCE_MS) throw new CliError(`--since reaches back at most ${MAX_SEARCH_DAYS} days, not "${text}"`, 2);
  return new Date(Date.now() - back).toISOString();
}

function limitOf(values: Values): number | undefined {
  const text = values.limit as string | undefined;
  if (text === undefined) return undefined;
  if (!/^[1-9]\d{0,6}$/.test(text)) throw new CliError(`--limit takes a positive number, not "${text}"`, 2);
  return Number(text);
}

export function print(values: Values, data: unknown, rows: Record<string, unknown>[], columns: string[]): void {
  process.stdout.write(values.json ? `${JSON.stringify(data, null, 2)}\n` : table(rows, columns));
}

export function printJson(data: unknown): void {
  process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
}

/** Every page of an admin search from `from` to now; `to` is fixed first so the cursors stay valid. */
async function search<T>(context: AdminContext, values: Values, path: string, key: string, query: URLSearchParams) {
  const session = await context.connect(values);
  query.set('to', new Date().toISOString());
  const { items, nextCursor } = await allPages(async (cursor, pageSize) => {
    const page = new URLSearchParams(query);
    page.set('limit', String(pageSize));
    if (cursor) page.set('cursor', cursor);
    const answer = await session.call<Record<string, unknown>>(`${path}?${page}`);
    return { items: answer[key] as T[], nextCursor: answer.nextCursor as string | undefined };
  }, limitOf(values));
  return { [key]: items, ...(nextCursor ? { nextCursor } : {}) } as Record<string, T[]> & { nextCursor?: string };
}

const SINCE_FLAG = (fallback: string) => ({ name: 'since', value: 'DURATION', text: `how far back, e.g. 30m, 1h, 7d (default ${fallback})` });
const LIMIT_FLAG = { name: 'limit', value: 'N', text: 'at most this many rows (default: every one in the range)' };

export const RECORD_COMMANDS: Command<AdminContext>[] = [
  {
    words: 'issuances',
    synopsis: '[--since 1h] [--object-id ID] [--registry HOST] [--repository NAME] [--outcome issued|denied|failed] [--limit N]',
    summary: 'The issuance audit, newest first.',
    details: 'Reads every page to the end of the range (or --limit rows).',
    flags: [
      SINCE_FLAG('1h'),
      { name: 'object-id', value: 'ID', text: "only this identity's requests" },
      { name: 'registry', value: 'HOST', text: 'only this registry' },
      { name: 'repository', value: 'NAME', text: 'only requests that named this repository' },
      { name: 'outcome', value: 'OUTCOME', text: 'issued, denied or failed' },
      LIMIT_FLAG,
      JSON_FLAG,
    ],
    run: async (values, _args, context) => {
      const query = new URLSearchParams({ from: since(values.since as string | undefined, '1h') });
      for (const [flag, parameter] of [['object-id', 'objectId'], ['registry', 'registry'], ['repository', 'repository'], ['outcome', 'outcome']] as const) {
        if (values[flag]) query.set(parameter, values[flag] as string);
      }
      const found = await search<Record<string, unknown>>(context, values, '/v1/admin/issuances', 'issuances', query);
      const rows = found.issuances!.map((i) => ({ ...i, scopes: (i.requestedScopes as string[]).join(' ') }));
      print(values, found, rows, ['time', 'outcome', 'reason', 'objectId', 'registry', 'scopes', 'issuanceId']);
    },
  },
  {
    words: 'audit',
    synopsis: '[--since 24h] [--limit N]',
    summary: 'The admin audit: grant, block and rotation actions, who, what and when.',
    details: 'Reads every page to the end of the range (or --limit rows).',
    flags: [SINCE_FLAG('24h'), LIMIT_FLAG, JSON_FLAG],
    run: async (values, _args, context) => {
      const query = new URLSearchParams({ from: since(values.since as string | undefined, '24h') });
      const found = await search<Record<string, unknown>>(context, values, '/v1/admin/audit', 'entries', query);
      print(values, found, found.entries!, ['time', 'action', 'target', 'outcome', 'objectId', 'detail']);
    },
  },
  {
    words: 'block',
    synopsis: '<object-id> --reason TEXT',
    summary: 'Deny an identity everything.',
    details: 'At once on this instance, within 15 s everywhere.',
    flags: [{ name: 'reason', value: 'TEXT', text: 'why (kept in the admin audit)' }],
    args: 1,
    run: async (values, [objectId], context) => {
      if (!values.reason) throw new CliError('block needs --reason', 2);
      const session = await context.connect(values);
      printJson(await session.call(`/v1/admin/blocks/${encodeURIComponent(objectId!)}`, { method: 'PUT', body: { reason: values.reason } }));
    },
  },
  {
    words: 'unblock',
    synopsis: '<object-id>',
    summary: 'Lift a block.',
    flags: [],
    args: 1,
    run: async (values, [objectId], context) => {
      await (await context.connect(values)).call(`/v1/admin/blocks/${encodeURIComponent(objectId!)}`, { method: 'DELETE' });
      process.stderr.write(`registry-broker: unblocked ${objectId}\n`);
    },
  },
  {
    words: 'credentials',
    summary: "Each registry's stored credential: version, age, rotation state, last error.",
    flags: [JSON_FLAG],
    run: async (values, _args, context) => {
      const { credentials } = await (await context.connect(values)).call<{ credentials: Record<string, unknown>[] }>('/v1/admin/credentials');
      print(values, { credentials }, credentials, ['registry', 'provider', 'currentVersion', 'ageDays', 'state', 'nextDueAt', 'lastError', 'warning']);
    },
  },
  {
    words: 'logins',
    summary: 'Login credentials (form login) that may still work at their provider; never a password.',
    flags: [JSON_FLAG],
    run: async (values, _args, context) => {
      const { credentials } = await (await context.connect(values)).call<{ credentials: Record<string, unknown>[] }>('/v1/admin/login-credentials');
      print(values, { credentials }, credentials, ['registry', 'objectId', 'scopes', 'state', 'expiresAt', 'credentialId', 'issuanceId']);
    },
  },
  {
    words: 'rotate',
    synopsis: '<registry>',
    summary: "Rotate a registry's stored credential now.",
    details: 'Its catalog entry needs a rotation policy (409 without).',
    flags: [],
    args: 1,
    run: async (values, [registry], context) => {
      printJson(await (await context.connect(values)).call(`/v1/admin/credentials/${encodeURIComponent(registry!)}/rotate`, { method: 'POST' }));
    },
  },
];
