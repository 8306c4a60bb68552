import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/sandbox/localServer.js';
import { bundledCli, splitNodeWarnings } from '../support/cli.js';
import { writeOciImage } from '../support/ociImage.js';
import { e2eAvailable, push } from '../support/skopeo.js';

/**
 * `npm start` as a user runs it: a child process that prints a walkthrough; the walkthrough's steps
 * (curl to IMDS, curl to the broker, skopeo) work; Ctrl-C leaves no process behind.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** How long `npm start` may take on a slow machine; the hook outlives it so the diagnostic prints. */
const START_WAIT_MS = 60_000;

interface Endpoints {
  broker: string;
  audience: string;
  imds: string;
  registry: { host: string };
  identities: { pusher: { clientId: string }; puller: { clientId: string }; admin: { clientId: string } };
  cli: Record<string, string>;
}

function sh(command: string, args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 30_000 }, (error, stdout) => resolve({ code: error ? 1 : 0, stdout }));
  });
}

async function descendants(pid: number): Promise<number[]> {
  const { stdout } = await sh('ps', ['-eo', 'pid=,ppid=']);
  const children = new Map<number, number[]>();
  for (const line of stdout.trim().split('\n')) {
    const [child, parent] = line.trim().split(/\s+/).map(Number) as [number, number];
    children.set(parent, [...(children.get(parent) ?? []), child]);
  }
  const found: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      found.push(c);
      walk(c);
    }
  };
  walk(pid);
  return found;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe.skipIf(!e2eAvailable())('npm start', () => {
  let child: ChildProcess;
  let output = '';
  let errors = '';
  let endpoints: Endpoints;
  let stateDir: string;

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'registry-broker-sandbox-'));
    const port = await freePort();
    // Its own process group, as in a terminal, so that Ctrl-C can be sent the way a terminal sends it.
    child = spawn('npm', ['start'], {
      cwd: ROOT,
      env: { ...process.env, BROKER_PORT: String(port), SANDBOX_DIR: stateDir },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    const until = Date.now() + START_WAIT_MS;
    while (!output.includes('Walkthrough') && Date.now() < until && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
    if (!output.includes('Walkthrough')) throw new Error(`npm start did not come up (exit ${child.exitCode}):\n${output}\n--- stderr ---\n${errors.slice(-4000)}`);
    endpoints = JSON.parse(await readFile(join(stateDir, 'endpoints.json'), 'utf8')) as Endpoints;
  }, START_WAIT_MS + 15_000);
  afterAll(() => {
    if (child?.pid && child.exitCode === null && child.signalCode === null) process.kill(-child.pid, 'SIGKILL');
  });

  const imdsToken = async (clientId: string) => {
    const url = `${endpoints.imds}?api-version=2018-02-01&resource=${encodeURIComponent(endpoints.audience)}&client_id=${clientId}`;
    const { stdout } = await sh('curl', ['-s', '-H', 'Metadata:true', url]);
    return (JSON.parse(stdout) as { access_token: string }).access_token;
  };
  const brokerToken = async (mi: string, scope: string) => {
    const body = JSON.stringify({ registry: endpoints.registry.host, scopes: [scope] });
    const { stdout } = await sh('curl', ['-s', '-w', '\n%{http_code}', '-X', 'POST', `${endpoints.broker}/v1/tokens`, '-H', `Authorization: Bearer ${mi}`, '-H', 'Content-Type: application/json', '-d', body]);
    const lines = stdout.trim().split('\n');
    return { status: Number(lines.pop()), body: JSON.parse(lines.join('\n')) as { token?: string } };
  };

  it('prints what is running and a walkthrough naming the demo identities', () => {
    expect(output).toContain(endpoints.broker);
    expect(output).toContain(endpoints.identities.pusher.clientId);
    expect(output).toContain('skopeo copy');
  });

  it('the walkthrough works: the push identity pushes, the pull identity is refused a push', async () => {
    const image = await writeOciImage('sandbox');
    const pusher = await brokerToken(await imdsToken(endpoints.identities.pusher.clientId), 'repository:demo/app:pull,push');
    expect(pusher.status).toBe(200);
    expect((await push(image, `${endpoints.registry.host}/demo/app:v1`, pusher.body.token!)).code).toBe(0);

    const pullerMi = await imdsToken(endpoints.identities.puller.clientId);
    expect((await brokerToken(pullerMi, 'repository:demo/app:pull,push')).status).toBe(403);
    const puller = await brokerToken(pullerMi, 'repository:demo/app:pull');
    expect(puller.status).toBe(200);
    const refused = await push(image, `${endpoints.registry.host}/demo/app:v2`, puller.body.token!);
    expect(refused.code).not.toBe(0);
  });

  it('the printed walkthrough runs as printed, from any directory: both pushes succeed', async () => {
    const start = output.indexOf('Walkthrough');
    const script = output.slice(output.indexOf('\n', start), output.indexOf('demo-puller (client_id', start));
    expect(script).not.toContain('some-oci-layout');
    const elsewhere = await mkdtemp(join(tmpdir(), 'registry-broker-walkthrough-'));
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const bash = spawn('bash', ['-euo', 'pipefail', '-c', script], { cwd: elsewhere, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      bash.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      bash.on('exit', (code) => resolve({ code, stderr }));
    });
    expect(result.stderr.slice(-2000)).not.toMatch(/denied|unauthorized|error/i);
    expect(result.code).toBe(0);
    const tags = await sh('skopeo', ['list-tags', '--tls-verify=false', '--registry-token', (await brokerToken(await imdsToken(endpoints.identities.pusher.clientId), 'repository:demo/app:pull')).body.token!, `docker://${endpoints.registry.host}/demo/app`]);
    expect((JSON.parse(tags.stdout) as { Tags: string[] }).Tags).toEqual(expect.arrayContaining(['v1', 'v2']));
  });

  it('the printed CLI commands run as printed (the built CLI in place of dist/): a token, and the admin lists grants', async () => {
    const start = output.indexOf('The CLI against the sandbox');
    expect(start).toBeGreaterThan(-1);
    const block = output.slice(output.indexOf('\n', start), output.indexOf('\n\n', output.indexOf('\n', start) + 2));
    const cliPath = join(ROOT, 'dist/registry-broker.mjs');
    expect(block).toContain(`node ${cliPath} `);
    const script = block.replaceAll(`node ${cliPath} `, `node ${await bundledCli()} `);
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile('bash', ['-euo', 'pipefail', '-c', script], { cwd: tmpdir(), timeout: 60_000 }, (error, stdout, stderr) => resolve({ code: error ? 1 : 0, stdout, stderr }));
    });
    expect(splitNodeWarnings(result.stderr).stderr).toBe('');
    expect(result.code).toBe(0);
    const [token, ...table] = result.stdout.trim().split('\n');
    expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(table.join('\n')).toMatch(/^demo-push\s/m);
    expect(endpoints.cli).toMatchObject({ REGISTRY_BROKER_URL: endpoints.broker, REGISTRY_BROKER_AUDIENCE: endpoints.audience });
  });

  it('Ctrl-C stops every process it started', async () => {
    const tree = await descendants(child.pid!);
    expect(tree.length).toBeGreaterThanOrEqual(3);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(-child.pid!, 'SIGINT');
    await exited;
    const until = Date.now() + 10_000;
    while (tree.some(alive) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(tree.filter(alive)).toEqual([]);
  });
});
