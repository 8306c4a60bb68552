import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dockerRegistryAvailable } from '../../src/sandbox/dockerRegistry.js';

export const SKOPEO = '/usr/bin/skopeo';

export interface SkopeoResult {
  code: number;
  output: string;
}

/**
 * The e2e tests need Debian's docker-registry and skopeo. Locally they are skipped when missing;
 * in CI (CI=true) a missing binary fails the run instead, so e2e can never be skipped silently.
 */
export function e2eAvailable(): boolean {
  const available = dockerRegistryAvailable() && existsSync(SKOPEO);
  if (!available && process.env.CI) throw new Error('CI needs /usr/bin/docker-registry and /usr/bin/skopeo (apt-get install -y docker-registry skopeo)');
  return available;
}

export function skopeo(args: string[]): Promise<SkopeoResult> {
  return new Promise((resolve) => {
    execFile(SKOPEO, ['--insecure-policy', ...args], { timeout: 60_000, env: { ...process.env, REGISTRY_AUTH_FILE: '/nonexistent/auth.json' } }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

export function push(imageDir: string, reference: string, token: string): Promise<SkopeoResult> {
  return skopeo(['copy', '--dest-tls-verify=false', '--dest-registry-token', token, `oci:${imageDir}:latest`, `docker://${reference}`]);
}

export async function pull(reference: string, token: string): Promise<SkopeoResult> {
  const out = await mkdtemp(join(tmpdir(), 'registry-broker-pull-'));
  return skopeo(['copy', '--src-tls-verify=false', '--src-registry-token', token, `docker://${reference}`, `oci:${out}:latest`]);
}
