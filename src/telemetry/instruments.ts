import { metrics, trace, type Attributes, type Counter, type Gauge, type Histogram, type MeterProvider, type Span, type Tracer, type TracerProvider } from '@opentelemetry/api';

/**
 * The broker's metrics and spans, through the OpenTelemetry API: no-ops until a provider is registered
 * (Azure Monitor when APPLICATIONINSIGHTS_CONNECTION_STRING is set, an in-memory reader in tests).
 * Attributes are registries, outcomes, reasons, forms and statuses only: never a token, a password or a
 * caller's claims.
 */
interface Instruments {
  issuances: Counter;
  issuanceDuration: Histogram;
  upstreamCalls: Counter;
  upstreamRateLimitRemaining: Gauge;
  keyVaultReads: Counter;
  auditWriteFailures: Counter;
  rotationRuns: Counter;
}

const SCOPE = 'registry-broker';
let cached: { provider: MeterProvider; instruments: Instruments } | undefined;

/** Instruments of the provider registered now: one registered after start-up is picked up. */
function instruments(): Instruments {
  const provider = metrics.getMeterProvider();
  if (cached?.provider === provider) return cached.instruments;
  const meter = provider.getMeter(SCOPE);
  const made: Instruments = {
    issuances: meter.createCounter('broker.issuances', { description: 'Token requests decided, by registry, outcome, reason and form' }),
    issuanceDuration: meter.createHistogram('broker.issuance.duration', { description: 'Time from request to audited answer', unit: 'ms' }),
    upstreamCalls: meter.createCounter('broker.upstream.calls', { description: 'Calls to registries, token services and management APIs, by registry and status' }),
    upstreamRateLimitRemaining: meter.createGauge('broker.upstream.ratelimit.remaining', {
      description: 'Requests left in the upstream rate-limit window, from RateLimit-Remaining / X-RateLimit-Remaining (Docker Hub)',
    }),
    keyVaultReads: meter.createCounter('broker.keyvault.reads', { description: 'Key Vault secret reads, by outcome' }),
    auditWriteFailures: meter.createCounter('broker.audit.write_failures', { description: 'Audit records that could not be written (their requests got 503)' }),
    rotationRuns: meter.createCounter('broker.rotation.runs', { description: 'Rotation runs, by registry and outcome' }),
  };
  cached = { provider, instruments: made };
  return made;
}

let cachedTracer: { provider: TracerProvider; tracer: Tracer } | undefined;

/** The tracer of the provider registered now, made once per provider (a request path asks for it every time). */
function tracer(): Tracer {
  const provider = trace.getTracerProvider();
  if (cachedTracer?.provider !== provider) cachedTracer = { provider, tracer: provider.getTracer(SCOPE) };
  return cachedTracer.tracer;
}

/**
 * While the exporter loads (after a cold instance's first answer), measurements wait here instead of
 * going to the no-op provider, so the dashboards count the requests that started the instance too.
 * Bounded: past HELD_LIMIT they are dropped, as they would have been without holding.
 */
const HELD_LIMIT = 10_000;
type Held = { name: keyof Instruments; value: number; attributes: Attributes };
let held: Held[] | undefined;

export function holdMeasurements(): void {
  held ??= [];
}

/** Records what was held through the provider registered now (a no-op one if the exporter failed). */
export function releaseHeldMeasurements(): void {
  const list = held ?? [];
  held = undefined;
  for (const measurement of list) measure(measurement.name, measurement.value, measurement.attributes);
}

function measure(name: keyof Instruments, value: number, attributes: Attributes): void {
  if (held) {
    if (held.length < HELD_LIMIT) held.push({ name, value, attributes });
    return;
  }
  const instrument = instruments()[name];
  if ('add' in instrument) instrument.add(value, attributes);
  else instrument.record(value, attributes);
}

export const telemetry = {
  issuance(attributes: { registry: string | undefined; outcome: string; reason: string; form: string }, durationMs: number): void {
    const clean: Attributes = { registry: attributes.registry ?? 'unknown', outcome: attributes.outcome, reason: attributes.reason, form: attributes.form };
    measure('issuances', 1, clean);
    measure('issuanceDuration', durationMs, clean);
  },

  upstreamCall(registry: string, status: number | 'error' | 'timeout', headers?: Headers): void {
    measure('upstreamCalls', 1, { registry, status: String(status) });
    const remaining = headers ? rateLimitRemaining(headers) : undefined;
    if (remaining !== undefined) measure('upstreamRateLimitRemaining', remaining, { registry });
  },

  keyVaultRead(outcome: 'ok' | 'missing' | 'error'): void {
    measure('keyVaultReads', 1, { outcome });
  },

  auditWriteFailed(table: string, records: number): void {
    measure('auditWriteFailures', records, { table });
  },

  rotationRun(registry: string, outcome: string): void {
    measure('rotationRuns', 1, { registry, outcome });
  },

  /** A span around `work`, ended however it ends; its attributes follow the same rules as the metrics. */
  async span<T>(name: string, attributes: Attributes, work: (span: Span) => Promise<T>): Promise<T> {
    return tracer().startActiveSpan(name, { attributes }, async (span) => {
      try {
        return await work(span);
      } finally {
        span.end();
      }
    });
  },
};

/** `RateLimit-Remaining: 76;w=21600` (Docker Hub's registry) or `X-RateLimit-Remaining: 76` (its API). */
function rateLimitRemaining(headers: Headers): number | undefined {
  const value = headers.get('ratelimit-remaining') ?? headers.get('x-ratelimit-remaining');
  if (value === null) return undefined;
  const count = Number.parseInt(value, 10);
  return Number.isFinite(count) ? count : undefined;
}
