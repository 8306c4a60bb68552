import autocannon from 'autocannon';
import { serve } from './ipc.js';

/** The load generator, in a process of its own so that its CPU never counts against a server. */
export interface LoadOptions {
  url: string;
  body: string;
  headers: Record<string, string>;
  connections: number;
  seconds: number;
  /** Requests per second across all connections; unset: as fast as the server answers. */
  rate?: number;
  /** Each request asks for the next of this many repositories (`bench/app` in the body becomes `bench/app-<n>`); unset: all the same. */
  repositories?: number;
}

export interface LoadResult {
  requests: number;
  ok: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  statuses: Record<string, number>;
  errors: number;
}

/** A request that asks for the next repository in turn: what a build farm of many repositories sends. */
function varied(body: string, repositories: number) {
  let next = 0;
  return (request: Record<string, unknown>) => ({ ...request, body: body.replace('bench/app', `bench/app-${next++ % repositories}`) });
}

async function run(args: Record<string, unknown>): Promise<LoadResult> {
  const options = args as unknown as LoadOptions;
  const result = await autocannon({
    url: options.url,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...options.headers },
    body: options.body,
    ...(options.repositories === undefined ? {} : { requests: [{ setupRequest: varied(options.body, options.repositories) }] }),
    connections: options.connections,
    duration: options.seconds,
    ...(options.rate === undefined ? {} : { overallRate: options.rate }),
  });
  const statuses = Object.fromEntries(Object.entries(result.statusCodeStats).map(([status, stats]) => [status, stats.count]));
  return {
    requests: result.requests.total,
    ok: result['2xx'],
    perSecond: result.requests.total / options.seconds,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    statuses,
    errors: result.errors + result.timeouts,
  };
}

serve({ run }, true);
