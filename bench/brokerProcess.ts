import { loadConfig } from '../src/config.js';
import { jsonLineLogger } from '../src/logger.js';
import { routes } from '../src/routes.js';
import { startBrokerHost } from '../src/sandbox/brokerHost.js';
import { createServices } from '../src/services.js';
import { serve } from './ipc.js';

/** The broker alone in its process, built from the settings in its environment, as a Functions worker is. */
const log = jsonLineLogger(() => undefined);
const host = await startBrokerHost(routes, createServices(loadConfig(process.env), log), log);
serve({}, host.url);
// A clean exit on SIGTERM, so that `--cpu-prof` (BENCH_PROFILE) can write its profile.
process.once('SIGTERM', () => process.exit(0));
