import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { build } from 'esbuild';
import { bundleFunctions } from '../infra/scripts/bundle-functions.mjs';
import { matchesRepository } from '../src/grants/pattern.js';
import { start, type Child, type Usage } from './ipc.js';
import type { LoadResult } from './loadGenerator.js';
import type { Dependency, StandIns } from './standIns.js';

/**
 * `npm run bench`: what one issuance costs. The broker and a bare node:http server each run in a
 * process of their own, the stand-ins and Azurite in others, and one load-generator process drives
 * them in turn; CPU and RSS are read from each server's own process. Then cold start of the built
 * Functions entry, and each dependency hung behind a stalling proxy. Targets are printed beside the
 * figures; the run exits 1 when one is missed.
 */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
/** BENCH_ONLY=load skips cold start and the hung dependencies (for profiling runs); BENCH_ONLY=cold runs cold start alone. */
const ONLY_LOAD = process.env.BENCH_ONLY === 'load';
const ONLY_COLD = process.env.BENCH_ONLY === 'cold';
const WARM_UP_SECONDS = 2;
const CONNECTIONS = 64;
const LARGE_ORGANISATION = Number(process.env.BENCH_GRANTS ?? 10_000);
/**
 * Cost against the number of grants is compared at one fixed request rate, below what Azurite
 * sustains here: at full speed the audit writer's batches (and so its cost per record) follow
 * Azurite's throughput, which would hide what the grants themselves cost.
 */
const FIXED_RATE = Number(process.env.BENCH_FIXED_RATE ?? 400);
const FIXED_RATE_CONNECTIONS = 16;
/** A build farm's mix: one caller asking for each of this many repositories in turn (no target; what a batch of many keys costs the audit index). */
const MIXED_REPOSITORIES = 200;
/**
 * The issue's figure for main on 2026-12-01 (1,500–1,900/s): the throughput target is three times its
 * low end, or three times what that main does in this run, if its sources are at hand (BENCH_BEFORE,
 * a git revision; not in a shallow clone).
 */
const ISSUANCES_PER_SECOND_BEFORE = 1500;
const BEFORE_REVISION = process.env.BENCH_BEFORE ?? '961d6c2';
const targets = {
  cpuMicrosPerIssuance: 120,
  issuancesPerSecond: 3 * ISSUANCES_PER_SECOND_BEFORE,
  rssMiB: 150,
  grantGrowth: 1.1,
  coldStartMs: 200,
  hungAnswerMs: 5000,
  matchesPerSecond: 1_000_000,
};

const root = new URL('..', import.meta.url).pathname;
const rows: { name: string; value: string; target: string; ok: boolean }[] = [];
const row = (name: string, value: number | string, target: string, ok: boolean) =>
  rows.push({ name, value: typeof value === 'number' ? value.toFixed(1) : value, target, ok });

interface Figures extends LoadResult {
  cpuMicrosPerRequest: number;
  /** Azurite's CPU per request over the same run, and the stand-ins process's (Entra, Key Vault, token server). */
  azuriteMicrosPerRequest: number;
  standInsMicrosPerRequest: number;
  /** The load generator's, which shares the box. */
  loaderMicrosPerRequest: number;
  rssMiB: number;
  heapMiB: number;
}

async function measure(standIns: Child, loader: Child, server: Child, url: string, headers: Record<string, string>, body: string, rate?: number, repositories?: number): Promise<Figures> {
  const load = { url, body, headers, connections: rate === undefined ? CONNECTIONS : FIXED_RATE_CONNECTIONS, ...(rate === undefined ? {} : { rate }), ...(repositories === undefined ? {} : { repositories }) };
  await loader.call('run', { ...load, seconds: WARM_UP_SECONDS });
  const others = async () => ({
    azurite: (await standIns.call<{ cpuMicros: number }>('azuriteUsage')).cpuMicros,
    standIns: (await standIns.call<Usage>('usage')).cpuMicros,
    loader: (await loader.call<Usage>('usage')).cpuMicros,
  });
  const before = await server.call<Usage>('usage');
  const othersBefore = await others();
  const result = await loader.call<LoadResult>('run', { ...load, seconds: SECONDS });
  const after = await server.call<Usage>('usage');
  const othersAfter = await others();
  if (result.ok !== result.requests) throw new Error(`${url}: ${JSON.stringify(result.statuses)} ${result.errors} errors`);
  return {
    ...result,
    cpuMicrosPerRequest: (after.cpuMicros - before.cpuMicros) / result.requests,
    azuriteMicrosPerRequest: (othersAfter.azurite - othersBefore.azurite) / result.requests,
    standInsMicrosPerRequest: (othersAfter.standIns - othersBefore.standIns) / result.requests,
    loaderMicrosPerRequest: (othersAfter.loader - othersBefore.loader) / result.requests,
    rssMiB: after.rssBytes / 2 ** 20, heapMiB: after.heapUsedBytes / 2 ** 20 };
}

/** BENCH_PROFILE=dir: each broker process (and each cold start) writes a V8 CPU profile there when it stops. */
const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE] : [];

let compiled: Awaited<ReturnType<typeof compile>>;

/** Node's options as the deployed worker gets them (infra/app/broker.bicep reads the same file). */
const workerOptions = JSON.parse(readFileSync(join(root, 'infra/app/nodeWorker.json'), 'utf8')) as { NODE_OPTIONS: string };

async function startBroker(env: Record<string, string>): Promise<{ broker: Child<string>; url: string }> {
  const broker = start<string>(compiled.brokerProcess, { ...env, NODE_OPTIONS: workerOptions.NODE_OPTIONS }, profile);
  return { broker, url: `${await broker.ready}/api/v1/tokens` };
}

function request(url: string, bearer: string, registry: string, repository: string, timeoutMs = 15_000) {
  const started = performance.now();
  return fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    body: JSON.stringify({ registry, scopes: [`repository:${repository}:pull`] }),
    signal: AbortSignal.timeout(timeoutMs),
  }).then(
    async (response) => {
      await response.arrayBuffer();
      return { status: response.status, retryAfter: response.headers.get('retry-after'), ms: performance.now() - started };
    },
    () => ({ status: 0, retryAfter: null, ms: performance.now() - started }),
  );
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((item) => {
    const path = join(dir, item.name);
    if (item.isDirectory()) return sources(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

/**
 * The broker as it runs deployed, by esbuild so that another engineer's half-typed file cannot stop
 * the bench, and run by plain Node, so that no tsx loader sits in the measured process: the load
 * runs' server compiled file by file, the Functions entry bundled as `npm run build` and the
 * deployment package bundle it. BENCH_ENTRY measures another build's Functions entry.
 */
async function compile(): Promise<{ brokerProcess: string; functionsEntry: string }> {
  const outdir = join(root, 'node_modules/.cache/bench-build');
  // BENCH_TREE: a copy of src/ and bench/ to measure instead of this one (before/after comparisons).
  const tree = process.env.BENCH_TREE ?? root;
  const brokerProcess = await buildBrokerProcess(tree, outdir);
  const functions = join(outdir, 'functions');
  rmSync(functions, { recursive: true, force: true });
  await bundleFunctions(functions, tree);
  return { brokerProcess, functionsEntry: process.env.BENCH_ENTRY ?? join(functions, 'index.js') };
}

/** A tree's src/ and its bench/brokerProcess.ts, file by file into `outdir`; the process's entry. */
async function buildBrokerProcess(tree: string, outdir: string): Promise<string> {
  const entryPoints = [...sources(join(tree, 'src')), join(tree, 'bench/brokerProcess.ts'), join(tree, 'bench/ipc.ts')];
  await build({ entryPoints, outdir, outbase: tree, format: 'esm', platform: 'node', target: 'node22', logLevel: 'error' });
  return join(outdir, 'bench/brokerProcess.js');
}

/**
 * The broker of BEFORE_REVISION, built as this one is, with this bench's process wrapper (its
 * host and services took the same arguments then); undefined when git cannot give its sources.
 */
async function compileBefore(): Promise<string | undefined> {
  const tree = join(root, 'node_modules/.cache/bench-before-tree');
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(join(tree, 'bench'), { recursive: true });
  try {
    const archive = execFileSync('git', ['-C', root, 'archive', '--format=tar', BEFORE_REVISION, 'src'], { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 * 2 ** 20 });
    execFileSync('tar', ['-x', '-C', tree], { input: archive });
  } catch {
    return undefined;
  }
  for (const file of ['brokerProcess.ts', 'ipc.ts']) copyFileSync(join(root, 'bench', file), join(tree, 'bench', file));
  return buildBrokerProcess(tree, join(root, 'node_modules/.cache/bench-before-build'));
}

type ColdStart = { importMs: number; answerMs: number; status: number; exporterMs?: number };

/** The built Functions entry, imported by a fresh process that then answers one token request; telemetry off and on. */
async function coldStarts(env: Record<string, string>, bearer: string, registry: string, organisation: string): Promise<void> {
  const entry = compiled.functionsEntry;
  // Telemetry on: the exporter is loaded (after registration) only when its connection string is set.
  const telemetryOn = { APPLICATIONINSIGHTS_CONNECTION_STRING: 'InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://127.0.0.1:9/' };
  for (const [telemetry, extra] of [['telemetry off', {}], ['telemetry on', telemetryOn]] as const) {
    const label = `${organisation}, ${telemetry}`;
    const starts: ColdStart[] = [];
    for (let i = 0; i < 3; i++) {
      const cold = start<ColdStart>(
        './coldStart.ts',
        { ...env, ...extra, NODE_OPTIONS: workerOptions.NODE_OPTIONS, BENCH_ENTRY: entry, BENCH_BEARER: bearer, BENCH_REGISTRY: registry },
        ['--disable-warning=ExperimentalWarning', ...profile],
      );
      starts.push(await cold.ready);
      await cold.stop();
    }
    starts.sort((a, b) => a.importMs + a.answerMs - (b.importMs + b.answerMs));
    const median = starts[1]!;
    const exporter = median.exporterMs === undefined ? '' : `; exporter running ${median.exporterMs.toFixed(0)} ms after it`;
    console.log(`cold start, ${label} (median of 3): import ${median.importMs.toFixed(0)} ms + first answer ${median.answerMs.toFixed(0)} ms (status ${median.status})${exporter}`);
    row(`cold start, ${label}: import + first answer (ms)`, median.importMs + median.answerMs, `≤ ${targets.coldStartMs}`, median.status === 200 && median.importMs + median.answerMs <= targets.coldStartMs);
  }
}

/** A small organisation's cold start and a large one's: a cold instance reads every grant before its first decision. */
async function coldStartsByOrganisation(standIns: Child<StandIns>, env: Record<string, string>, bearer: string, registry: string): Promise<void> {
  for (const grants of [10, LARGE_ORGANISATION]) {
    await standIns.call('fresh', { grants });
    await coldStarts(env, bearer, registry, `${grants} grants`);
  }
}

async function main(): Promise<void> {
  compiled = await compile();
  const standIns = start<StandIns>('./standIns.ts');
  const loader = start('./loadGenerator.ts');
  const children: Child[] = [standIns, loader];
  try {
    const { env, registry } = await standIns.ready;
    await loader.ready;
    const bearer = await standIns.call<string>('mint');
    const auth = { authorization: `Bearer ${bearer}` };
    const body = JSON.stringify({ registry, scopes: ['repository:bench/app:pull,push'] });
    if (ONLY_COLD) {
      await coldStartsByOrganisation(standIns, env, bearer, registry);
      return;
    }

    const bare = start<string>('./bareServer.ts');
    children.push(bare);
    const bareFigures = await measure(standIns, loader, bare, `${await bare.ready}/`, {}, body);
    await bare.stop();

    const beforeProcess = ONLY_LOAD ? undefined : await compileBefore();
    let before: Figures | undefined;
    if (beforeProcess) {
      await standIns.call('fresh', { grants: 10 });
      const broker = start<string>(beforeProcess, { ...env, NODE_OPTIONS: workerOptions.NODE_OPTIONS });
      children.push(broker);
      before = await measure(standIns, loader, broker, `${await broker.ready}/api/v1/tokens`, auth, body);
      await broker.stop();
    }

    const figures: Record<number, Figures> = {};
    const atFixedRate: Record<number, Figures> = {};
    let mixed: Figures | undefined;
    // A fresh broker's first Key Vault read is two requests (the 401 challenge, then the GET); after it,
    // nothing until the cache period ends. The same for Entra: one key-set fetch, then nothing.
    let keyVaultRequests = 0;
    let keySetFetches = 0;
    for (const grants of [10, LARGE_ORGANISATION]) {
      await standIns.call('fresh', { grants });
      const { broker, url } = await startBroker(env);
      children.push(broker);
      const readsBefore = await standIns.call<number>('keyVaultReads');
      const fetchesBefore = await standIns.call<number>('jwksReads');
      figures[grants] = await measure(standIns, loader, broker, url, auth, body);
      atFixedRate[grants] = await measure(standIns, loader, broker, url, auth, body, FIXED_RATE);
      if (grants === LARGE_ORGANISATION) mixed = await measure(standIns, loader, broker, url, auth, body, undefined, MIXED_REPOSITORIES);
      keyVaultRequests = Math.max(keyVaultRequests, (await standIns.call<number>('keyVaultReads')) - readsBefore);
      keySetFetches = Math.max(keySetFetches, (await standIns.call<number>('jwksReads')) - fetchesBefore);
      await broker.stop();
    }

    const print = (name: string, f: Figures) =>
      console.log(
        `${name.padEnd(22)} ${f.perSecond.toFixed(0).padStart(6)} req/s  p50 ${f.p50Ms.toFixed(1).padStart(5)} ms  p99 ${f.p99Ms.toFixed(1).padStart(5)} ms  ` +
          `CPU ${f.cpuMicrosPerRequest.toFixed(0).padStart(4)} µs/req (${(f.cpuMicrosPerRequest / bareFigures.cpuMicrosPerRequest).toFixed(1)}× bare)  RSS ${f.rssMiB.toFixed(0)} MiB (heap ${f.heapMiB.toFixed(0)})  Azurite ${f.azuriteMicrosPerRequest.toFixed(0)} µs/req  stand-ins ${f.standInsMicrosPerRequest.toFixed(0)}, load generator ${f.loaderMicrosPerRequest.toFixed(0)}`,
      );
    console.log(`${CONNECTIONS} connections for ${SECONDS} s each, one repeat caller, upstream token pooled, audit in Azurite`);
    print('bare node:http', bareFigures);
    if (before) print(`main ${BEFORE_REVISION}, 10 grants`, before);
    print('broker, 10 grants', figures[10]!);
    print(`broker, ${LARGE_ORGANISATION} grants`, figures[LARGE_ORGANISATION]!);
    print(`  at ${FIXED_RATE}/s, 10 grants`, atFixedRate[10]!);
    print(`  at ${FIXED_RATE}/s, ${LARGE_ORGANISATION}`, atFixedRate[LARGE_ORGANISATION]!);
    print(`  ${MIXED_REPOSITORIES} repositories`, mixed!);

    const small = figures[10]!;
    const large = figures[LARGE_ORGANISATION]!;
    row('broker CPU per issuance, 10 grants (µs)', small.cpuMicrosPerRequest, `≤ ${targets.cpuMicrosPerIssuance}`, small.cpuMicrosPerRequest <= targets.cpuMicrosPerIssuance);
    row('issuances per second, end to end', small.perSecond, `≥ ${targets.issuancesPerSecond}`, small.perSecond >= targets.issuancesPerSecond);
    if (before) {
      row(`issuances per second ÷ main ${BEFORE_REVISION}'s in this run`, small.perSecond / before.perSecond, '≥ 3', small.perSecond >= 3 * before.perSecond);
      console.log(`main ${BEFORE_REVISION} in this run: ${before.perSecond.toFixed(0)} issuances/s, ${before.cpuMicrosPerRequest.toFixed(0)} µs of broker CPU each (now ${(before.cpuMicrosPerRequest / small.cpuMicrosPerRequest).toFixed(1)}× less), Azurite ${before.azuriteMicrosPerRequest.toFixed(0)} µs each`);
    }
    const growth = atFixedRate[LARGE_ORGANISATION]!.cpuMicrosPerRequest / atFixedRate[10]!.cpuMicrosPerRequest;
    row(`CPU at ${LARGE_ORGANISATION} grants / at 10 (${FIXED_RATE}/s)`, growth, `≤ ${targets.grantGrowth}`, growth <= targets.grantGrowth);
    const rss = Math.max(small.rssMiB, large.rssMiB);
    row('broker RSS under load (MiB)', rss, `≤ ${targets.rssMiB}`, rss <= targets.rssMiB);
    row('Key Vault requests in a load run (challenge + read)', keyVaultRequests, '≤ 2', keyVaultRequests <= 2);
    row('Entra key-set fetches in a load run', keySetFetches, '≤ 1', keySetFetches <= 1);

    if (!ONLY_LOAD) {
      await coldStartsByOrganisation(standIns, env, bearer, registry);

      for (const dependency of ['tables', 'key-vault', 'entra-metadata', 'registry'] satisfies Dependency[]) {
        // A fresh broker, so nothing it caches hides the dependency; Tables and the registry are reached
        // on every request anyway, so warm those up first.
        const { broker, url } = await startBroker(env);
        children.push(broker);
        if (dependency === 'tables' || dependency === 'registry') await request(url, bearer, registry, 'bench/warm');
        await standIns.call('stall', { dependency });
        const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => request(url, bearer, registry, `bench/hung-${dependency}-${i}`)));
        await standIns.call('resume', { dependency });
        const resumed = performance.now();
        let recovered = false;
        while (!recovered && performance.now() - resumed < 20_000) recovered = (await request(url, bearer, registry, 'bench/after', 5000)).status === 200;
        await broker.stop();
        const worst = Math.max(...answers.map((answer) => answer.ms));
        const expected = dependency === 'registry' ? 504 : 503;
        const statuses = [...new Set(answers.map((answer) => answer.status))].join('/');
        const answeredWell = answers.every((answer) => answer.status === expected && (expected === 504 || answer.retryAfter !== null));
        console.log(`${dependency} hung: statuses ${statuses}, slowest ${worst.toFixed(0)} ms, ${recovered ? `recovered ${(performance.now() - resumed).toFixed(0)} ms after resume` : 'did not recover'}`);
        row(`${dependency} hung: slowest answer (ms), ${expected}`, worst, `≤ ${targets.hungAnswerMs}, ${expected}${expected === 503 ? ' + Retry-After' : ''}, recovers`, worst <= targets.hungAnswerMs && answeredWell && recovered);
      }
    }

    const patterns = ['acme/web-*', 'acme/**', '**/base', 'a/*/c/**/z'];
    const names = ['acme/web-api', 'acme/team/web', 'org/x/base', 'a/b/c/d/e/z', 'nomatch/zz'];
    const runs = 500_000;
    let hits = 0;
    const matchStarted = performance.now();
    for (let i = 0; i < runs; i++) if (matchesRepository(patterns[i % 4]!, names[i % 5]!)) hits++;
    const matchesPerSecond = runs / ((performance.now() - matchStarted) / 1000);
    row(`grant pattern matches per second (${hits} hits)`, matchesPerSecond, `≥ ${targets.matchesPerSecond}`, matchesPerSecond >= targets.matchesPerSecond);
  } finally {
    for (const child of children.reverse()) await child.stop();
  }
}

main().then(
  () => {
    for (const { name, value, target, ok } of rows) console.log(`${ok ? 'ok  ' : 'MISS'} ${name.padEnd(48)} ${value.padStart(12)}   target ${target}`);
    process.exit(rows.every((r) => r.ok) ? 0 : 1);
  },
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
