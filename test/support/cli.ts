import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the registry-broker CLI as a workload would, in its own process. `imds` points
 * @azure/identity's IMDS client at the Entra stand-in (AZURE_POD_IDENTITY_AUTHORITY_HOST); the
 * broker's own App Service identity variables are removed so the CLI cannot borrow them.
 */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const { IDENTITY_ENDPOINT: _endpoint, IDENTITY_HEADER: _header, ...inherited } = process.env;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, env: { ...inherited, ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}
