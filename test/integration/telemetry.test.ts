import { metrics } from '@opentelemetry/api';
import { AggregationTemporality, MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { startHarness, type Harness } from '../support/harness.js';
import { holdMeasurements, releaseHeldMeasurements } from '../../src/telemetry/instruments.js';

/**
 * Issue 15, metrics: the broker's instruments after real requests, read through an in-memory reader
 * (the same instruments Azure Monitor exports when APPLICATIONINSIGHTS_CONNECTION_STRING is set).
 */
class CollectingReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

const reader = new CollectingReader();
let h: Harness;
let caller: ManagedIdentity;

beforeAll(async () => {
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
  h = await startHarness();
  caller = h.sandbox.identity('ci');
  await h.grant({ id: 'pull-web', subjects: [{ objectId: caller.objectId }], repositories: ['acme/web'], actions: ['pull'] });
});
afterAll(() => h?.close());

type Point = { attributes: Record<string, unknown>; value: unknown };
function points(collected: ResourceMetrics, name: string): Point[] {
  return collected.scopeMetrics.flatMap((scope) => scope.metrics.filter((metric) => metric.descriptor.name === name).flatMap((metric) => metric.dataPoints as Point[]));
}
const sum = (list: Point[], match: Record<string, unknown>) =>
  list.filter((point) => Object.entries(match).every(([key, value]) => point.attributes[key] === value)).reduce((total, point) => total + Number(point.value), 0);

describe('metrics after real requests', () => {
  it('counts issuances by registry, outcome, reason and form; upstream calls; Key Vault reads; no audit failures', async () => {
    for (let i = 0; i < 3; i++) expect((await h.requestToken(caller, ['repository:acme/web:pull'])).status).toBe(200);
    expect((await h.requestToken(caller, ['repository:acme/web:push'])).status).toBe(403);
    expect((await h.post('/v1/tokens', { registry: h.sandbox.registry.host, scopes: ['repository:acme/web:pull'] }, 'junk')).status).toBe(401);

    const { resourceMetrics } = await reader.collect();
    const issuances = points(resourceMetrics, 'broker.issuances');
    const registry = h.sandbox.registry.host;
    expect(sum(issuances, { registry, outcome: 'issued', reason: 'issued', form: 'token' })).toBe(3);
    expect(sum(issuances, { registry, outcome: 'denied', reason: 'not-granted' })).toBe(1);
    expect(sum(issuances, { outcome: 'denied', reason: 'invalid-token:malformed' })).toBe(1);
    const durations = points(resourceMetrics, 'broker.issuance.duration');
    expect(durations.length).toBeGreaterThan(0);
    // Tokens are pooled: three issuances, one mint at the registry's token service.
    expect(sum(points(resourceMetrics, 'broker.upstream.calls'), { registry, status: '200' })).toBeGreaterThanOrEqual(1);
    expect(sum(points(resourceMetrics, 'broker.keyvault.reads'), { outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sum(points(resourceMetrics, 'broker.audit.write_failures'), {})).toBe(0);
    // Only registries, outcomes, reasons, forms and statuses: no caller claims, no tokens.
    const attributeNames = new Set(issuances.flatMap((point) => Object.keys(point.attributes)));
    expect([...attributeNames].sort()).toEqual(['form', 'outcome', 'reason', 'registry']);
    expect(JSON.stringify(resourceMetrics)).not.toContain(caller.objectId);
  });
});

describe('metrics of requests answered while the exporter loads', () => {
  it('are held, then recorded once it runs: a cold instance counts the requests that started it', async () => {
    const registry = h.sandbox.registry.host;
    const issued = async () => sum(points((await reader.collect()).resourceMetrics, 'broker.issuances'), { registry, outcome: 'issued' });
    const before = await issued();
    holdMeasurements();
    try {
      for (let i = 0; i < 2; i++) expect((await h.requestToken(caller, ['repository:acme/web:pull'])).status).toBe(200);
      expect(await issued()).toBe(before);
    } finally {
      releaseHeldMeasurements();
    }
    expect(await issued()).toBe(before + 2);
    // Released once: nothing is recorded twice, and what follows is counted as it happens.
    releaseHeldMeasurements();
    expect((await h.requestToken(caller, ['repository:acme/web:pull'])).status).toBe(200);
    expect(await issued()).toBe(before + 3);
  });
});
