#!/usr/bin/env node
import { basename } from 'node:path';
import { runAdmin } from './admin.js';
import { CliError } from './brokerClient.js';
import { dispatch, overview, OVERVIEW_WIDTH, type Command } from './command.js';
import { runCredentialHelper } from './credentialHelper.js';
import { runKubeletProvider } from './kubeletProvider.js';
import { version } from './version.js';
import { WORKLOAD_COMMANDS } from './workload.js';

/**
 * The one CLI: the workload's commands, the operator's `admin`, and the two programs other tools
 * start — the docker credential helper (when run as `docker-credential-registry-broker`, or as
 * `registry-broker docker-credential-helper`) and the kubelet credential provider.
 */
const HELPER_NAME = 'docker-credential-registry-broker';

const COMMANDS: Command<undefined>[] = [
  ...WORKLOAD_COMMANDS,
  {
    words: 'kubelet-credential-provider',
    summary: "The kubelet's exec credential provider (credentialprovider.kubelet.k8s.io/v1).",
    details:
      "Reads a CredentialProviderRequest on stdin and answers a login for pull on the image's repository, cached by the kubelet for half its life. Configured like the credential helper: REGISTRY_BROKER_URL, REGISTRY_BROKER_AUDIENCE, REGISTRY_BROKER_CLIENT_ID.",
    flags: [],
    run: () => runKubeletProvider(),
  },
];

const USAGE = overview('registry-broker', COMMANDS as Command<unknown>[], [
  `  ${'admin <command>'.padEnd(OVERVIEW_WIDTH)}  grants (and grants as code), issuances, blocks, credentials, rotation, audit`,
  `  ${'docker-credential-helper <action>'.padEnd(OVERVIEW_WIDTH)}  the docker credential-helper protocol; also installed as ${HELPER_NAME}`,
  '',
  'The broker and audience come from --broker/--audience or REGISTRY_BROKER_URL/REGISTRY_BROKER_AUDIENCE.',
  '--version prints the version.',
].join('\n'));

async function run(argv: string[]): Promise<void> {
  if (argv[0] === 'admin') return runAdmin(argv.slice(1));
  if (argv[0] === 'docker-credential-helper') return runCredentialHelper(argv.slice(1));
  if (argv[0] === '--version' || argv[0] === '-v') return void process.stdout.write(`registry-broker ${version()}\n`);
  return dispatch('registry-broker', COMMANDS, argv, undefined, USAGE);
}

const asHelper = basename(process.argv[1] ?? '').startsWith(HELPER_NAME);

(asHelper ? runCredentialHelper(process.argv.slice(2)) : run(process.argv.slice(2))).catch((error: unknown) => {
  const message = error instanceof CliError ? error.message : String(error);
  // Tools that start the helper read one line; the CLI's usage errors carry the usage after it.
  process.stderr.write(`registry-broker: ${asHelper ? message.split('\n')[0] : message}\n`);
  process.exit(error instanceof CliError && !asHelper ? error.exitCode : 1);
});
