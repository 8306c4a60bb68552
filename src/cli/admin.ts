import { DefaultAzureCredential } from '@azure/identity';
import { EXPLAIN_COMMAND } from './adminExplain.js';
import { GRANT_COMMANDS } from './adminGrants.js';
import { RECORD_COMMANDS } from './adminRecords.js';
import { brokerSession, brokerTarget, callerToken, type BrokerSession } from './brokerClient.js';
import { BROKER_FLAGS, dispatch, overview, type Command, type Values } from './command.js';
import { GRANTS_AS_CODE_COMMANDS } from './grantsAsCode.js';

/**
 * `registry-broker admin …`: the operator's side. The token comes from DefaultAzureCredential — the
 * operator's `az login` on a laptop, a managed identity in automation — and must carry the broker's
 * admin app role. Each command is one row of the table below, with its own flags and --help.
 */
export interface AdminContext {
  /** Signs in (only when a command needs the broker, so `grants lint` stays offline). */
  connect(values: Values): Promise<BrokerSession>;
}

const PREFIX = 'registry-broker admin';

export const ADMIN_COMMANDS: Command<AdminContext>[] = [...GRANT_COMMANDS, ...GRANTS_AS_CODE_COMMANDS, EXPLAIN_COMMAND, ...RECORD_COMMANDS].map((command) => ({
  ...command,
  flags: [...command.flags, ...BROKER_FLAGS],
}));

export const ADMIN_USAGE = overview(PREFIX, ADMIN_COMMANDS as Command<unknown>[], '\noptions (every command): --broker URL (REGISTRY_BROKER_URL)  --audience URI (REGISTRY_BROKER_AUDIENCE)\n');

const context: AdminContext = {
  connect: async (values) => {
    const { broker, audience } = brokerTarget(values);
    return brokerSession(broker, await callerToken(new DefaultAzureCredential(), audience, 'az login, or AZURE_CLIENT_ID for a user-assigned managed identity'));
  },
};

export function runAdmin(argv: string[]): Promise<void> {
  return dispatch(PREFIX, ADMIN_COMMANDS, argv, context, ADMIN_USAGE);
}
