import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleCli } from '../../src/cli/bundle.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  /** What the CLI wrote to stderr, without Node's own deprecation warnings (those are in `warnings`). */
  stderr: string;
  warnings: string[];
}

export interface RunOptions {
  /** Written to the CLI's standard input (the credential-helper and kubelet protocols). */
  input?: string;
  /** The program and its first arguments; default: the CLI from source through tsx. */
  program?: string[];
}

/**
 * Node prints a deprecation warning on stderr when a dependency (or the tsx loader) uses a deprecated
 * API — that is Node talking, not the CLI. Only those exact lines are set aside; anything else the
 * process writes on stderr still counts as the CLI's.
 */
const DEPRECATION = /^\(node:\d+\) \[DEP\d+\] DeprecationWarning: .*$/;
const TRACE_HINT = /^\(Use `node --trace-deprecation \.\.\.` to show where the warning was created\)$/;

export function splitNodeWarnings(stderr: string): { stderr: string; warnings: string[] } {
  const warnings: string[] = [];
  const kept = stderr.split(/(?<=\n)/).filter((line) => {
    const text = line.replace(/\n$/, '');
    const isWarning = DEPRECATION.test(text) || TRACE_HINT.test(text);
    if (isWarning) warnings.push(text);
    return !isWarning;
  });
  return { stderr: kept.join(''), warnings };
}

export const SOURCE_CLI = [process.execPath, '--import', 'tsx', 'src/cli/main.ts'];

/**
 * Runs the registry-broker CLI as a workload would, in its own process. `imds` points
 * @azure/identity's IMDS client at the Entra stand-in (AZURE_POD_IDENTITY_AUTHORITY_HOST); the
 * broker's own App Service identity variables are removed so the CLI cannot borrow them.
 */
export function runCli(args: string[], env: Record<string, string> = {}, options: RunOptions = {}): Promise<CliResult> {
  const { IDENTITY_ENDPOINT: _endpoint, IDENTITY_HEADER: _header, ...inherited } = process.env;
  const [program, ...first] = options.program ?? SOURCE_CLI;
  return new Promise((resolve) => {
    const child = execFile(program!, [...first, ...args], { cwd: ROOT, env: { ...inherited, ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, ...splitNodeWarnings(stderr) });
    });
    child.stdin?.end(options.input ?? '');
  });
}

let bundled: Promise<string> | undefined;

/**
 * The CLI as it ships: `src/cli/bundle.ts` writes the one file into an otherwise empty directory
 * (no node_modules anywhere above it), once per test process.
 */
export function bundledCli(): Promise<string> {
  bundled ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'registry-broker-bundle-'));
    const file = join(dir, 'registry-broker.mjs');
    await bundleCli(file);
    return file;
  })();
  return bundled;
}

/** The oldest Node the CLI promises to run on, when this machine has it (Debian's is 20). */
export const OLDEST_NODE = existsSync('/usr/bin/node') ? '/usr/bin/node' : process.execPath;
