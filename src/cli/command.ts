import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { BrokerRefused, CliError } from './brokerClient.js';

export type Values = Record<string, string | string[] | boolean | undefined>;

/** One option of a command, with the words its usage text shows. */
export interface Flag {
  name: string;
  /** What the value is, e.g. `URL`; a flag without one is a boolean. */
  value?: string;
  multiple?: boolean;
  short?: string;
  text: string;
}

/** A command of the table: its words, what it takes, and what it does. */
export interface Command<Context> {
  words: string;
  /** What follows the words in the synopsis, e.g. `<id> [--reason TEXT]`. */
  synopsis?: string;
  /** One line for the overview. */
  summary: string;
  /** More for the command's own --help. */
  details?: string;
  flags: Flag[];
  /** How many positional arguments it takes (after its words). */
  args?: number;
  run(values: Values, args: string[], context: Context): Promise<void>;
}

export const BROKER_FLAGS: Flag[] = [
  { name: 'broker', value: 'URL', text: "the broker's API base, e.g. https://broker.azurewebsites.net/api (env REGISTRY_BROKER_URL)" },
  { name: 'audience', value: 'URI', text: "the broker's App ID URI or client ID (env REGISTRY_BROKER_AUDIENCE)" },
];
export const JSON_FLAG: Flag = { name: 'json', text: 'print JSON instead of a table' };

function optionsOf(flags: Flag[]): ParseArgsOptionsConfig {
  const options: ParseArgsOptionsConfig = { help: { type: 'boolean', short: 'h' } };
  for (const flag of flags) {
    options[flag.name] = { type: flag.value ? 'string' : 'boolean', ...(flag.multiple ? { multiple: true } : {}), ...(flag.short ? { short: flag.short } : {}) };
  }
  return options;
}

function flagLines(flags: Flag[]): string {
  const names = flags.map((flag) => `${flag.short ? `-${flag.short}, ` : ''}--${flag.name}${flag.value ? ` ${flag.value}` : ''}${flag.multiple ? ' …' : ''}`);
  const width = Math.max(0, ...names.map((name) => name.length));
  return flags.map((flag, i) => `  ${names[i]!.padEnd(width)}  ${flag.text}`).join('\n');
}

export function usageOf(prefix: string, command: Command<unknown>): string {
  const flags = command.flags.length ? `\n\noptions:\n${flagLines(command.flags)}` : '';
  const details = command.details ? ` ${command.details}` : '';
  return `usage: ${prefix} ${command.words}${command.synopsis ? ` ${command.synopsis}` : ''}\n\n${command.summary}${details}${flags}\n`;
}

export const OVERVIEW_WIDTH = 40;

/** A command table's overview: one line per command, for `--help` on the group. */
export function overview(prefix: string, commands: Command<unknown>[], footer = ''): string {
  const heads = commands.map((command) => `${command.words}${command.synopsis ? ` ${command.synopsis}` : ''}`);
  const width = Math.min(OVERVIEW_WIDTH, Math.max(...heads.map((head) => head.length)));
  const lines = commands.map((command, i) => {
    const head = heads[i]!;
    return head.length > width ? `  ${head}\n  ${''.padEnd(width)}  ${command.summary}` : `  ${head.padEnd(width)}  ${command.summary}`;
  });
  return `usage: ${prefix} <command> [options]\n\ncommands:\n${lines.join('\n')}\n${footer}\nEvery command takes --help.\n`;
}

function asksForHelp(argv: string[]): boolean {
  return argv.some((arg) => arg === '--help' || arg === '-h');
}

/**
 * Finds the command whose words start `argv` (the longest such), parses the rest with that command's
 * own flags and runs it. `--help` prints usage on stdout; an unknown command, option or extra
 * argument is a usage error (exit 2) that prints the usage.
 */
export async function dispatch<Context>(prefix: string, commands: Command<Context>[], argv: string[], context: Context, groupUsage: string): Promise<void> {
  const firstOption = argv.findIndex((arg) => arg.startsWith('-'));
  const words = firstOption === -1 ? argv : argv.slice(0, firstOption);
  const command = commands
    .filter((candidate) => candidate.words.split(' ').every((word, i) => words[i] === word))
    .sort((a, b) => b.words.length - a.words.length)[0];
  if (!command) {
    const group = commands.filter((candidate) => words.length > 0 && candidate.words.startsWith(`${words[0]} `));
    const usage = group.length ? overview(prefix, group as Command<unknown>[]) : groupUsage;
    if (asksForHelp(argv) || argv.length === 0) return void process.stdout.write(usage);
    const unknown = words.length ? `unknown command "${words.join(' ')}"` : `unknown option "${argv[0]}"`;
    throw new CliError(`${unknown}\n\n${usage}`, 2);
  }
  const usage = usageOf(prefix, command as Command<unknown>);
  const rest = argv.slice(command.words.split(' ').length);
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: rest, allowPositionals: true, strict: true, options: optionsOf(command.flags) }) as { values: Values; positionals: string[] };
  } catch (error) {
    if (asksForHelp(rest)) return void process.stdout.write(usage);
    if ((error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) throw new CliError(`${(error as Error).message}\n\n${usage}`, 2);
    throw error;
  }
  if (parsed.values.help) return void process.stdout.write(usage);
  if (parsed.positionals.length !== (command.args ?? 0)) {
    const expected = command.args ? `takes ${command.args} argument${command.args > 1 ? 's' : ''}` : 'takes no arguments';
    throw new CliError(`${command.words} ${expected}\n\n${usage}`, 2);
  }
  try {
    await command.run(parsed.values, parsed.positionals, context);
  } catch (error) {
    // A command that finds its input wrong says what; the usage that helps fix it is added here. The
    // broker's 400 is one line of its own: it names what is wrong better than the usage would.
    if (error instanceof CliError && error.exitCode === 2 && !(error instanceof BrokerRefused)) throw new CliError(`${error.message}\n\n${usage}`, 2);
    throw error;
  }
}
