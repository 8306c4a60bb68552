import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import * as z from 'zod';

/**
 * The credential helper's disk cache: docker starts the helper for every pull and push, and a login
 * credential is good for far longer than one command, so it is handed out again until half its life
 * has passed. One 0600 file per (broker, identity, registry, scopes), in a 0700 directory
 * ($REGISTRY_BROKER_CACHE_DIR, default ~/.cache/registry-broker), written by rename so that two
 * helpers running at once never read half a file.
 */
const entrySchema = z.object({ username: z.string(), password: z.string(), expiresAt: z.string(), refreshAt: z.number() });
export type CachedLogin = z.infer<typeof entrySchema>;

export interface CacheKey {
  broker: string;
  audience: string;
  clientId?: string | undefined;
  registry: string;
  scopes: string[];
}

function cacheDir(): string {
  return process.env.REGISTRY_BROKER_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'registry-broker');
}

function fileOf(key: CacheKey): string {
  const identity = JSON.stringify([key.broker, key.audience, key.clientId ?? '', key.registry, [...key.scopes].sort()]);
  return join(cacheDir(), `login-${createHash('sha256').update(identity).digest('hex').slice(0, 32)}.json`);
}

export async function cachedLogin(key: CacheKey, now = Date.now()): Promise<CachedLogin | undefined> {
  try {
    const entry = entrySchema.safeParse(JSON.parse(await readFile(fileOf(key), 'utf8')));
    return entry.success && now < entry.data.refreshAt ? entry.data : undefined;
  } catch {
    // missing or unreadable: ask the broker
    return undefined;
  }
}

/** Keeps a login received now that lives `expiresIn` seconds, until half of that has passed. */
export async function storeLogin(key: CacheKey, login: { username: string; password: string; expiresAt: string; expiresIn: number }, now = Date.now()): Promise<void> {
  const entry: CachedLogin = { username: login.username, password: login.password, expiresAt: login.expiresAt, refreshAt: now + (login.expiresIn * 1000) / 2 };
  await mkdir(cacheDir(), { recursive: true, mode: 0o700 });
  const path = fileOf(key);
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, JSON.stringify(entry), { mode: 0o600 });
  await rename(temporary, path);
}

export async function forgetLogin(key: CacheKey): Promise<void> {
  await rm(fileOf(key), { force: true });
}
