import { performance } from 'node:perf_hooks';
import { matchesRepository } from '../src/grants/pattern.js';
import { jsonLineLogger } from '../src/logger.js';
import { AUDIENCE, startSandbox } from '../src/sandbox/sandbox.js';

/**
 * `npm run bench`: issuance latency and throughput through the whole local stack (Entra stand-in,
 * Key Vault stand-in, Azurite, token server, sandbox host), plus the grant matcher on its own.
 * Targets are printed beside each number; the run exits 1 if one is missed.
 */
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const SEQUENTIAL = 300;
const targets = { p50Ms: 15, p99Ms: 50, perSecond: 300, rssMiB: 300, matchesPerSecond: 1_000_000 };

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  // One caller sends every request here: lift its rate limit, which is not what is measured.
  const sandbox = await startSandbox({ log: jsonLineLogger(() => undefined), env: { CALLER_RATE_PER_MINUTE: '1000000' } });
  const caller = sandbox.identity('bench');
  await sandbox.services.grants.create({
    id: 'bench',
    subjects: [{ objectId: caller.objectId }],
    registry: sandbox.registry.host,
    repositories: ['bench/**'],
    actions: ['pull', 'push'],
    enabled: true,
  });
  const bearer = await sandbox.entra.mint({ identity: caller, audience: AUDIENCE });
  const issue = async (i: number) => {
    const started = performance.now();
    const response = await fetch(`${sandbox.broker.url}/api/v1/tokens`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${bearer}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ registry: sandbox.registry.host, scopes: [`repository:bench/r${i % 50}:pull,push`] }),
    });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`status ${response.status}`);
    return performance.now() - started;
  };
  for (let i = 0; i < 50; i++) await issue(i);

  // Latency: one request at a time, so queueing does not hide what one issuance costs.
  const latencies: number[] = [];
  for (let i = 0; i < SEQUENTIAL; i++) latencies.push(await issue(i));
  latencies.sort((a, b) => a - b);

  // Throughput: many callers at once, where audit batching pays off.
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < REQUESTS) await issue(next++);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const rssMiB = process.memoryUsage().rss / 2 ** 20;
  await sandbox.close();

  const patterns = ['acme/web-*', 'acme/**', '**/base', 'a/*/c/**/z'];
  const names = ['acme/web-api', 'acme/team/web', 'org/x/base', 'a/b/c/d/e/z', 'nomatch/zz'];
  const matchRuns = 500_000;
  const matchStarted = performance.now();
  let hits = 0;
  for (let i = 0; i < matchRuns; i++) if (matchesRepository(patterns[i % 4]!, names[i % 5]!)) hits++;
  const matchesPerSecond = matchRuns / ((performance.now() - matchStarted) / 1000);

  const rows: [string, number, number, boolean][] = [
    ['issuance p50, sequential (ms)', percentile(latencies, 50), targets.p50Ms, percentile(latencies, 50) <= targets.p50Ms],
    ['issuance p99, sequential (ms)', percentile(latencies, 99), targets.p99Ms, percentile(latencies, 99) <= targets.p99Ms],
    [`issuances per second, ${CONCURRENCY} concurrent`, REQUESTS / seconds, targets.perSecond, REQUESTS / seconds >= targets.perSecond],
    ['process RSS (MiB, whole stack in one process)', rssMiB, targets.rssMiB, rssMiB <= targets.rssMiB],
    ['grant pattern matches per second', matchesPerSecond, targets.matchesPerSecond, matchesPerSecond >= targets.matchesPerSecond],
  ];
  console.log(`${SEQUENTIAL} sequential + ${REQUESTS} concurrent issuances, each audited in Azurite before the answer (${hits} pattern hits)`);
  for (const [name, value, target, ok] of rows) console.log(`${ok ? 'ok  ' : 'MISS'} ${name.padEnd(48)} ${value.toFixed(1).padStart(12)}   target ${target}`);
  process.exit(rows.every(([, , , ok]) => ok) ? 0 : 1);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
