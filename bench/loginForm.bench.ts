import { performance } from 'node:perf_hooks';
import { jsonLineLogger } from '../src/logger.js';
import { startSandbox } from '../src/sandbox/sandbox.js';

/**
 * Form "login" latency (issue 12), in one process with every stand-in: a fresh login credential
 * (the provider creates one: the Docker Hub API stand-in, and its record in Table Storage) against one
 * handed out again while more than half its life remains. Each request is audited either way.
 */
const ROUNDS = 40;
const sandbox = await startSandbox({ log: jsonLineLogger(() => undefined), login: true, loginOrganization: 'acme' });
try {
  const base = `${sandbox.broker.url}/api/v1/tokens`;
  const identities = Array.from({ length: ROUNDS }, (_, i) => sandbox.identity(`builder-${i}`));
  await sandbox.services.grants.create({
    id: 'bench-login',
    subjects: identities.map((identity) => ({ objectId: identity.objectId })),
    registry: sandbox.registry.host,
    repositories: ['acme/**'],
    actions: ['pull', 'push'],
    enabled: true,
  });
  const ask = async (bearer: string) => {
    const started = performance.now();
    const response = await fetch(base, {
      method: 'POST',
      headers: { Authorization: `Bearer ${bearer}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ registry: sandbox.registry.host, scopes: ['repository:acme/web:pull,push'], form: 'login' }),
    });
    if (response.status !== 200) throw new Error(`${response.status} ${await response.text()}`);
    await response.json();
    return performance.now() - started;
  };
  const tokens = await Promise.all(identities.map((identity) => sandbox.entra.mint({ identity, audience: 'api://registry-broker' })));
  const fresh: number[] = [];
  for (const token of tokens) fresh.push(await ask(token));
  const reused: number[] = [];
  for (const token of tokens) reused.push(await ask(token));
  const p = (list: number[], q: number) => [...list].sort((a, b) => a - b)[Math.min(list.length - 1, Math.floor(q * list.length))]!;
  console.log(`form "login" latency, ${ROUNDS} identities, sequential`);
  for (const [name, list] of [['fresh (provider creates one)', fresh], ['reused (more than half its life left)', reused]] as const) {
    console.log(`  ${name.padEnd(40)} p50 ${p(list, 0.5).toFixed(1).padStart(6)} ms   p99 ${p(list, 0.99).toFixed(1).padStart(6)} ms`);
  }
} finally {
  await sandbox.close();
}
