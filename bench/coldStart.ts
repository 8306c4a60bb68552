import { metrics } from '@opentelemetry/api';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type * as AzureFunctions from '@azure/functions';
import type { AppStartHandler } from '@azure/functions';

/**
 * A cold Functions worker, run by plain Node without tsx: import the built entry the way the host
 * does, run its app-start hooks as the worker does next, then answer one token request through the
 * handler it registered. Registration is captured by replacing `app.http` and `app.hook.appStart`,
 * since outside the host @azure/functions registers nothing. The package is loaded first, the way
 * the entry loads it (require() from beside it), so the measured import costs what it would in the host.
 * Sends `{ importMs, answerMs, status, exporterMs }` as its ready message.
 */
type Handler = (request: unknown, context: unknown) => Promise<{ status?: number }>;

/**
 * What the worker has loaded before it imports the entry: it talks gRPC to the host first, and
 * @grpc/grpc-js loads exactly these of Node's modules. The entry does not pay for them in Azure.
 */
const WORKER_BUILTINS = ['node:assert', 'node:crypto', 'node:dns', 'node:http', 'node:http2', 'node:net', 'node:os', 'node:stream', 'node:tls', 'node:zlib'];

/**
 * With a connection string, how long after the first answer the exporter's meter provider is
 * registered (it waits for a quiet moment); the entry's bundled OpenTelemetry API and this one share
 * their globals.
 */
async function exporterStarted(): Promise<number | undefined> {
  if (!process.env.APPLICATIONINSIGHTS_CONNECTION_STRING) return undefined;
  const from = performance.now();
  while (metrics.getMeterProvider() === noProvider) {
    if (performance.now() - from > 15_000) return undefined;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return performance.now() - from;
}

const entry = process.env.BENCH_ENTRY!;
const require = createRequire(entry);
for (const name of WORKER_BUILTINS) require(name);
const noProvider = metrics.getMeterProvider();
const started = performance.now();
const functions = require('@azure/functions') as typeof AzureFunctions;
const handlers = new Map<string, Handler>();
functions.app.http = ((name: string, options: { handler: Handler }) => void handlers.set(name, options.handler)) as typeof functions.app.http;
functions.app.timer = (() => undefined) as typeof functions.app.timer;
const appStart: AppStartHandler[] = [];
functions.app.hook.appStart = ((handler: AppStartHandler) => void appStart.push(handler)) as unknown as typeof functions.app.hook.appStart;
await import(pathToFileURL(entry).href);
const imported = performance.now();
for (const handler of appStart) await handler(new functions.AppStartContext());
const request = new functions.HttpRequest({
  method: 'POST',
  url: 'http://127.0.0.1/api/v1/tokens',
  headers: { authorization: `Bearer ${process.env.BENCH_BEARER}`, 'content-type': 'application/json' },
  body: { string: JSON.stringify({ registry: process.env.BENCH_REGISTRY, scopes: ['repository:bench/cold:pull'] }) },
});
const context = new functions.InvocationContext({ invocationId: 'cold-start', functionName: 'tokens', logHandler: () => undefined });
const response = await handlers.get('tokens')!(request, context);
const answered = performance.now();
process.send!({ ready: { importMs: imported - started, answerMs: answered - imported, status: response.status ?? 200, exporterMs: await exporterStarted() } });
process.on('disconnect', () => process.exit(0));
// Exiting (not dying of the signal) lets --cpu-prof write its profile.
process.on('SIGTERM', () => process.exit(0));
