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

export const telemetry = {
  issuance(attributes: { registry: string | undefined; outcome: string; reason: string; form: string }, durationMs: number): void {
    const clean: Attributes = { registry: attributes.registry ?? 'unknown', outcome: attributes.outcome, reason: attributes.reason, form: attributes.form };
    const made = instruments();
    made.issuances.add(1, clean);
    made.issuanceDuration.record(durationMs, clean);
  },

  upstreamCall(registry: string, status: number | 'error' | 'timeout', headers?: Headers): void {
    instruments().upstreamCalls.add(1, { registry, status: String(status) });
    const remaining = headers ? rateLimitRemaining(headers) : undefined;
    if (remaining !== undefined) instruments().upstreamRateLimitRemaining.record(remaining, { registry });
  },

  keyVaultRead(outcome: 'ok' | 'missing' | 'error'): void {
    instruments().keyVaultReads.add(1, { outcome });
  },

  auditWriteFailed(table: string, records: number): void {
    instruments().auditWriteFailures.add(records, { table });
  },

  rotationRun(registry: string, outcome: string): void {
    instruments().rotationRuns.add(1, { registry, outcome });
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
