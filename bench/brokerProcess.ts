import { readFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';
import { loadConfig } from '../src/config.js';
import { jsonLineLogger } from '../src/logger.js';
import { routes } from '../src/routes.js';
import { startBrokerHost } from '../src/sandbox/brokerHost.js';
import { createServices } from '../src/services.js';
import { serve } from './ipc.js';

/** The broker alone in its process, built from the settings in its environment, as a Functions worker is. */
const log = jsonLineLogger(() => undefined);
const host = await startBrokerHost(routes, createServices(loadConfig(process.env), log), log);
/** Where the RSS goes (V8 heap spaces, buffers, the rest), for finding what holds memory under load. */
function memory(): Record<string, number> {
  const mib = (bytes: number) => Math.round(bytes / 2 ** 17) / 8;
  const spaces = Object.fromEntries(getHeapSpaceStatistics().map((space) => [space.space_name, mib(space.space_size)]));
  const rollup = Object.fromEntries([...readFileSync('/proc/self/smaps_rollup', 'utf8').matchAll(/^(\w+):\s+(\d+) kB/gm)].map(([, name, kb]) => [name, mib(Number(kb) * 1024)]));
  const { rss, heapTotal, heapUsed, external, arrayBuffers } = process.memoryUsage();
  return { rss: mib(rss), heapTotal: mib(heapTotal), heapUsed: mib(heapUsed), external: mib(external), arrayBuffers: mib(arrayBuffers), ...spaces, anonymous: rollup.Anonymous ?? 0, fileBacked: (rollup.Rss ?? 0) - (rollup.Anonymous ?? 0) };
}
serve({ memory }, host.url);
// A clean exit on SIGTERM, so that `--cpu-prof` (BENCH_PROFILE) can write its profile.
process.once('SIGTERM', () => process.exit(0));
