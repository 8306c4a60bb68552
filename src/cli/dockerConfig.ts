import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { CliError } from './brokerClient.js';

/**
 * The docker CLI's config: $DOCKER_CONFIG/config.json, default ~/.docker. Only the docker engine's
 * clients honour a `registrytoken` entry there; skopeo and podman ignore it (skopeo takes a token
 * only as `--registry-token`), so those need the login form, whose `auth` entry every client reads.
 */
export function dockerConfigPath(configDir?: string): string {
  return join(configDir ?? process.env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json');
}

/**
 * Sets `auths[key]` to the broker's entry (`{ registrytoken }` or `{ auth }`), keeping every other
 * entry and setting of the file. Written to a 0600 temporary file and renamed over the old one, so
 * the credential is never readable by others and a crash never leaves half a file.
 */
export async function writeDockerAuth(path: string, key: string, entry: Record<string, string>): Promise<void> {
  let config: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(await readFile(path, 'utf8'));
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) config = parsed as Record<string, unknown>;
    else throw new CliError(`${path} is not a JSON object; not overwriting it`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw error instanceof SyntaxError ? new CliError(`${path} is not valid JSON; not overwriting it`) : error;
    }
  }
  const auths = (config.auths && typeof config.auths === 'object' ? config.auths : {}) as Record<string, unknown>;
  const next = { ...config, auths: { ...auths, [key]: entry } };
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
  await rename(temporary, path);
}
