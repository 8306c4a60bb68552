import { readFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import type { Grant } from '../grants/model.js';
import type { AdminContext } from './admin.js';
import { CliError, type BrokerSession } from './brokerClient.js';
import type { Command, Flag, Values } from './command.js';
import { formatFindings, lintGrants } from './grantsFile.js';
import { applyPlan, canonical, describePlan, planGrants } from './grantsPlan.js';

/** Grants as code: export the broker's grants as YAML, lint a file offline, plan and apply it. */
const FILE_FLAG: Flag = { name: 'file', short: 'f', value: 'grants.yaml', text: 'the grants file' };
const PRUNE_FLAG: Flag = { name: 'prune', text: 'also delete grants the file does not have' };

/** The registries the broker serves: one credential entry per catalog registry. */
async function catalogOf(session: BrokerSession): Promise<string[]> {
  const { credentials } = await session.call<{ credentials: { registry: string }[] }>('/v1/admin/credentials');
  return credentials.map((credential) => credential.registry);
}

async function readFileFlag(values: Values): Promise<{ file: string; text: string }> {
  const file = values.file as string | undefined;
  if (!file) throw new CliError('missing -f grants.yaml', 2);
  try {
    return { file, text: await readFile(file, 'utf8') };
  } catch (error) {
    throw new CliError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** Lints the file (against the catalog when a session is given); refuses to go on past any finding. */
async function checkedGrants(values: Values, session: BrokerSession | undefined): Promise<{ file: string; grants: Grant[] }> {
  const { file, text } = await readFileFlag(values);
  const { grants, findings } = lintGrants(text, session ? await catalogOf(session) : undefined);
  if (findings.length > 0) {
    process.stderr.write(formatFindings(file, findings));
    throw new CliError(`${file}: ${findings.length} problem${findings.length > 1 ? 's' : ''}`);
  }
  return { file, grants };
}

export const GRANTS_AS_CODE_COMMANDS: Command<AdminContext>[] = [
  {
    words: 'grants export',
    summary: "Print the broker's grants as a grants file (YAML).",
    details: 'The starting point of a grants repository: `export > grants.yaml`, then lint, plan and apply.',
    flags: [],
    run: async (values, _args, context) => {
      const { grants } = await (await context.connect(values)).call<{ grants: Grant[] }>('/v1/admin/grants');
      const sorted = grants.map(canonical).sort((a, b) => a.id.localeCompare(b.id));
      process.stdout.write(stringify({ grants: sorted }));
    },
  },
  {
    words: 'grants lint',
    synopsis: '-f grants.yaml [--broker URL]',
    summary: 'Check a grants file offline; with --broker also against the catalog.',
    details:
      "Checks the broker's own grant schema, malformed subjects, unknown actions, duplicate ids and repository patterns that can never match; with --broker also registries the broker does not serve. Exit 1 when anything is found, one line per finding on stderr.",
    flags: [FILE_FLAG],
    run: async (values, _args, context) => {
      const session = values.broker ? await context.connect(values) : undefined;
      const { file, grants } = await checkedGrants(values, session);
      process.stdout.write(`${file}: ${grants.length} grant${grants.length === 1 ? '' : 's'}, no problems\n`);
    },
  },
  {
    words: 'grants plan',
    synopsis: '-f grants.yaml [--prune]',
    summary: 'Print what apply would create, update and delete.',
    flags: [FILE_FLAG, PRUNE_FLAG],
    run: async (values, _args, context) => {
      const session = await context.connect(values);
      const { grants } = await checkedGrants(values, session);
      process.stdout.write(describePlan(await planGrants(session, grants, values.prune === true)));
    },
  },
  {
    words: 'grants apply',
    synopsis: '-f grants.yaml [--prune]',
    summary: "Make the broker's grants what the file says.",
    details:
      'One admin-audited change per grant, each sent with the ETag it was planned against (If-Match). It stops at the first conflict — a grant created, changed or deleted by someone else since the plan — and says which; what was applied before it stays applied.',
    flags: [FILE_FLAG, PRUNE_FLAG],
    run: async (values, _args, context) => {
      const session = await context.connect(values);
      const { grants } = await checkedGrants(values, session);
      const plan = await planGrants(session, grants, values.prune === true);
      process.stdout.write(describePlan(plan));
      await applyPlan(session, plan, (line) => process.stdout.write(`${line}\n`));
      process.stdout.write(`applied ${plan.changes.length} change${plan.changes.length === 1 ? '' : 's'}\n`);
    },
  },
];
