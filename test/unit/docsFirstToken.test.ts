import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { AUDIENCE, startHarness, type Harness } from '../support/harness.js';

/**
 * docs/examples/first-token.aci.yaml's own shell command, the first day's first token, run here with
 * sh and curl against the sandbox: its IMDS stand-in in place of 169.254.169.254, the sandbox registry
 * in place of docker.io. What the container prints is what docs/operations.md says it prints, and
 * never the token.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h?.close());

async function runFirstToken(clientId: string, repository: string) {
  const group = parseYaml(await readFile(join(ROOT, 'docs/examples/first-token.aci.yaml'), 'utf8')) as { properties: { containers: { properties: { command: string[] } }[] } };
  const [shell, flag, script] = group.properties.containers[0]!.properties.command;
  expect([shell, flag]).toEqual(['sh', '-c']);
  expect(script).toContain('http://169.254.169.254/metadata/identity/oauth2/token');
  expect(script).toContain('"registry":"docker.io"');
  const local = script!
    .replace('http://169.254.169.254', h.sandbox.entra.url)
    .replace('"registry":"docker.io"', `"registry":"${h.sandbox.registry.host}"`)
    .replace('<repository>', repository);
  const env = { PATH: process.env.PATH!, BROKER: `${h.sandbox.broker.url}/api`, AUDIENCE, CLIENT_ID: clientId };
  const { stdout } = await promisify(execFile)('sh', ['-c', local], { env });
  return stdout.trim();
}

it('prints 200, the issuance ID and the expiry of an issued token, and not the token', async () => {
  const workload = h.sandbox.identity('first-workload');
  await h.grant({ id: 'first-workload', subjects: [{ objectId: workload.objectId }], repositories: ['acme/web'], actions: ['pull'] });
  const printed = await runFirstToken(workload.clientId, 'acme/web');
  const [, status, issuanceId] = /^(\d{3}) "issuanceId":"([0-9A-Z]{26})" "expiresAt":"[^"]+"$/.exec(printed) ?? [];
  expect(status, printed).toBe('200');
  const record = (await h.auditRecords()).find((r) => r.issuanceId === issuanceId);
  expect(record?.outcome).toBe('issued');
  expect(printed).not.toMatch(/eyJ|token/i);
});

it('prints 403 and what is missing for a repository nobody granted', async () => {
  const workload = h.sandbox.identity('first-workload');
  const printed = await runFirstToken(workload.clientId, 'acme/other');
  expect(printed).toMatch(/^403 .*"detail":"[^"]*acme\/other/);
});
