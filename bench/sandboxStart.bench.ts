import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { freePort } from '../src/sandbox/localServer.js';

/** `npm start` until its walkthrough is printed (every stand-in, Azurite and the registry up); target 15 s. */
const TARGET_MS = 15_000;
const RUNS = 3;

async function once(): Promise<number> {
  const started = performance.now();
  const child = spawn('npm', ['start'], {
    env: { ...process.env, BROKER_PORT: String(await freePort()), SANDBOX_DIR: await mkdtemp(join(tmpdir(), 'bench-sandbox-')) },
    stdio: ['ignore', 'pipe', 'ignore'],
    detached: true,
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Walkthrough')) resolve();
    });
    child.once('exit', () => reject(new Error(`npm start exited:\n${output}`)));
  });
  const elapsed = performance.now() - started;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(-child.pid!, 'SIGINT');
  await exited;
  return elapsed;
}

const times: number[] = [];
for (let i = 0; i < RUNS; i++) times.push(await once());
const worst = Math.max(...times);
console.log(`${worst <= TARGET_MS ? 'ok  ' : 'MISS'} ${'npm start ready, worst of 3 (ms)'.padEnd(48)} ${worst.toFixed(1).padStart(12)}   target ${TARGET_MS}`);
process.exit(worst <= TARGET_MS ? 0 : 1);
