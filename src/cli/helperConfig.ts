import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import * as z from 'zod';
import { CliError } from './brokerClient.js';

/**
 * Configuration of the programs other tools start (the docker credential helper, the kubelet
 * credential provider), which take no flags: the environment (REGISTRY_BROKER_URL,
 * REGISTRY_BROKER_AUDIENCE, REGISTRY_BROKER_CLIENT_ID, REGISTRY_BROKER_SCOPES), else a small JSON
 * file — $REGISTRY_BROKER_CONFIG, default ~/.config/registry-broker/config.json:
 *   { "broker": "https://…/api", "audience": "api://…", "clientId": "…",
 *     "scopes": { "docker.io": ["repository:acme/web:pull,push"] } }
 * `scopes` may also be one list for every registry.
 */
const fileSchema = z.strictObject({
  broker: z.url().optional(),
  audience: z.string().min(1).optional(),
  clientId: z.string().min(1).optional(),
  scopes: z.union([z.array(z.string()).min(1), z.record(z.string(), z.array(z.string()).min(1))]).optional(),
});

export interface HelperConfig {
  broker: string;
  audience: string;
  clientId?: string;
  /** The scopes to ask for on this registry; undefined when none are configured for it. */
  scopesFor(registry: string): string[] | undefined;
}

function configPath(): { path: string; explicit: boolean } {
  const explicit = process.env.REGISTRY_BROKER_CONFIG;
  if (explicit) return { path: explicit, explicit: true };
  return { path: join(process.env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'registry-broker', 'config.json'), explicit: false };
}

async function readConfigFile(): Promise<z.infer<typeof fileSchema>> {
  const { path, explicit } = configPath();
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !explicit) return {};
    throw new CliError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CliError(`${path} is not valid JSON`);
  }
  const result = fileSchema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new CliError(`${path}: ${issue.path.join('.') || 'the file'}: ${issue.message}`);
  }
  return result.data;
}

export async function loadHelperConfig(): Promise<HelperConfig> {
  const file = await readConfigFile();
  const env = process.env;
  const broker = env.REGISTRY_BROKER_URL || file.broker;
  const audience = env.REGISTRY_BROKER_AUDIENCE || file.audience;
  if (!broker) throw new CliError('no broker configured: set REGISTRY_BROKER_URL or "broker" in the config file');
  if (!audience) throw new CliError('no audience configured: set REGISTRY_BROKER_AUDIENCE or "audience" in the config file');
  const clientId = env.REGISTRY_BROKER_CLIENT_ID || file.clientId;
  const envScopes = env.REGISTRY_BROKER_SCOPES?.split(/\s+/).filter(Boolean);
  const scopesFor = (registry: string): string[] | undefined => {
    if (envScopes?.length) return envScopes;
    if (Array.isArray(file.scopes)) return file.scopes;
    return file.scopes?.[registry];
  };
  return { broker, audience, ...(clientId ? { clientId } : {}), scopesFor };
}
