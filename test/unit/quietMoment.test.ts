import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { inQuietMoment } from '../../src/quietMoment.js';

/** When deferred work (the telemetry exporter's ~350 ms import) runs: never in a request's way if it can help it. */
const OPTIONS = { quietMs: 100, idleMs: 3000, latestMs: 10_000 };
let runs: number;
const work = () => void (runs += 1);

beforeEach(() => {
  vi.useFakeTimers();
  runs = 0;
});
afterEach(() => vi.useRealTimers());

it('runs once the first answer has left and nothing has been in flight for quietMs', () => {
  const activity = inQuietMoment(work, OPTIONS);
  activity.begin();
  vi.advanceTimersByTime(500);
  expect(runs).toBe(0);
  activity.end();
  vi.advanceTimersByTime(99);
  expect(runs).toBe(0);
  vi.advanceTimersByTime(1);
  expect(runs).toBe(1);
});

it('waits while a request is in flight, and a request arriving in the quiet window restarts it', () => {
  const activity = inQuietMoment(work, OPTIONS);
  activity.begin();
  activity.begin();
  activity.end();
  vi.advanceTimersByTime(1000);
  expect(runs).toBe(0);
  activity.end();
  vi.advanceTimersByTime(50);
  activity.begin();
  vi.advanceTimersByTime(200);
  expect(runs).toBe(0);
  activity.end();
  vi.advanceTimersByTime(100);
  expect(runs).toBe(1);
});

it('runs idleMs after start-up when no request comes, and only once', () => {
  const activity = inQuietMoment(work, OPTIONS);
  vi.advanceTimersByTime(3099);
  expect(runs).toBe(0);
  vi.advanceTimersByTime(1);
  expect(runs).toBe(1);
  activity.begin();
  activity.end();
  vi.advanceTimersByTime(20_000);
  expect(runs).toBe(1);
});

it('runs latestMs after start-up even on an instance that is never quiet', () => {
  const activity = inQuietMoment(work, OPTIONS);
  activity.begin();
  for (let t = 0; t < 9_900; t += 50) {
    activity.begin();
    activity.end();
    vi.advanceTimersByTime(50);
  }
  expect(runs).toBe(0);
  vi.advanceTimersByTime(100);
  expect(runs).toBe(1);
  vi.advanceTimersByTime(20_000);
  expect(runs).toBe(1);
});
