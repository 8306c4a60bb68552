import { readFile } from 'node:fs/promises';
import type { AdminContext } from './admin.js';
import { JSON_FLAG, type Command, type Flag, type Values } from './command.js';
import { print, printJson } from './adminRecords.js';

/** Grants one API call at a time; grants as code (export, lint, plan, apply) are in grantsAsCode.ts. */
export const grantPath = (id: string) => `/v1/admin/grants/${encodeURIComponent(id)}`;

const GRANT_FLAGS: Flag[] = [
  { name: 'file', value: 'grant.json', text: 'the whole grant as JSON (instead of the flags below)' },
  { name: 'id', value: 'ID', text: 'the grant id (add)' },
  { name: 'registry', value: 'HOST', text: 'the registry it applies to' },
  { name: 'repository', value: 'PATTERN', multiple: true, text: 'repository name or pattern ("*" within a segment, "**" across)' },
  { name: 'action', value: 'ACTION', multiple: true, text: 'pull, push or delete' },
  { name: 'object-id', value: 'ID', multiple: true, text: "a subject's principal ID" },
  { name: 'app-id', value: 'ID', multiple: true, text: "a subject's client ID" },
  { name: 'description', value: 'TEXT', text: 'what it is for' },
  { name: 'max-ttl', value: 'SECONDS', text: 'cap on the credential lifetime' },
  { name: 'not-after', value: 'ISO', text: 'the grant ends then' },
  { name: 'disabled', text: 'keep it, but let it grant nothing' },
];

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

export const GRANT_COMMANDS: Command<AdminContext>[] = [
  {
    words: 'grants list',
    summary: 'Every grant, as a table (--json: as the API returns them).',
    flags: [JSON_FLAG],
    run: async (values, _args, context) => {
      const { grants } = await (await context.connect(values)).call<{ grants: Record<string, unknown>[] }>('/v1/admin/grants');
      const rows = grants.map((g) => ({ ...g, subjects: (g.subjects as Record<string, string>[]).map((s) => s.objectId ?? `app:${s.appId}`) }));
      print(values, { grants }, rows, ['id', 'registry', 'repositories', 'actions', 'subjects', 'enabled']);
    },
  },
  {
    words: 'grants show',
    synopsis: '<id>',
    summary: 'One grant, as JSON.',
    flags: [],
    args: 1,
    run: async (values, [id], context) => printJson(await (await context.connect(values)).call(grantPath(id!))),
  },
  {
    words: 'grants add',
    synopsis: '--id ID --registry HOST --repository PATTERN… --action ACTION… --object-id ID… | --file grant.json',
    summary: 'Create a grant (409 if the id exists).',
    flags: GRANT_FLAGS,
    run: async (values, _args, context) => {
      const created = await (await context.connect(values)).call<Record<string, unknown>>('/v1/admin/grants', { method: 'POST', body: await grantFromFlags(values) });
      process.stderr.write(`registry-broker: created grant ${String(created.id)}\n`);
      printJson(created);
    },
  },
  {
    words: 'grants update',
    synopsis: '<id> [grant fields]',
    summary: 'Change the fields given, keeping the rest.',
    details: 'Reads the ETag and sends If-Match, so a concurrent edit is never lost.',
    flags: GRANT_FLAGS.filter((flag) => flag.name !== 'id'),
    args: 1,
    run: async (values, [id], context) => {
      const session = await context.connect(values);
      const current = await session.request<Record<string, unknown>>(grantPath(id!));
      const next = await grantFromFlags(values, current.body);
      printJson(await session.call(grantPath(id!), { method: 'PUT', body: next, headers: { 'If-Match': current.headers.get('etag') ?? '' } }));
    },
  },
  {
    words: 'grants rm',
    synopsis: '<id>',
    summary: 'Delete a grant (with If-Match).',
    flags: [],
    args: 1,
    run: async (values, [id], context) => {
      const session = await context.connect(values);
      const current = await session.request(grantPath(id!));
      await session.call(grantPath(id!), { method: 'DELETE', headers: { 'If-Match': current.headers.get('etag') ?? '' } });
      process.stderr.write(`registry-broker: removed grant ${id}\n`);
    },
  },
];
