import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * Issue 15: infra gives the operator alerts and a workbook without configuring anything. These read
 * the templates (no Bicep compiler runs here) and cross-check them with what the code really emits:
 * an alert on a log line nobody writes, or a tile on a metric nobody records, would never show anything.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFile(join(ROOT, path), 'utf8');

async function sources(dir: string): Promise<string> {
  const texts: string[] = [];
  for (const entry of await readdir(join(ROOT, dir))) {
    const path = join(dir, entry);
    if ((await stat(join(ROOT, path))).isDirectory()) texts.push(await sources(path));
    else if (path.endsWith('.ts') && !path.includes('sandbox')) texts.push(await read(path));
  }
  return texts.join('\n');
}

describe('alerts and workbook (infra/app/monitoring.bicep)', () => {
  it('alerts on audit write failures, rotation failures, credentials near expiry and the 5xx rate', async () => {
    const monitoring = await read('infra/app/monitoring.bicep');
    const names = [...monitoring.matchAll(/^\s+name: '([a-z-]+)'\n\s+description:/gm)].map((m) => m[1]);
    expect(names).toEqual(['audit-write-failed', 'rotation-failed', 'credential-expires-soon', 'server-errors']);
    expect(monitoring).toMatch(/resource logAlerts 'Microsoft\.Insights\/scheduledQueryRules@[\d-]+(?:-preview)?' = \[\n\s+for alert in alerts/);
    expect(monitoring).toMatch(/scopes: \[insightsId\]/);
    expect(monitoring).toMatch(/actions: \{ actionGroups: \[operators\.id\] \}/);
    expect(monitoring).toMatch(/resultCode\) >= 500/);
  });

  it('each log alert watches a message the broker really logs', async () => {
    const monitoring = await read('infra/app/monitoring.bicep');
    const code = await sources('src');
    const watched = [...monitoring.matchAll(/message has "([^"]+)"/g)].map((m) => m[1]!);
    expect(watched).toHaveLength(3);
    for (const message of watched) expect(code, message).toContain(`'${message}'`);
  });

  it('the workbook shows every metric the broker records, and no other', async () => {
    const monitoring = await read('infra/app/monitoring.bicep');
    const instruments = await read('src/telemetry/instruments.ts');
    const recorded = new Set([...instruments.matchAll(/create(?:Counter|Histogram|Gauge)\('([^']+)'/g)].map((m) => m[1]!));
    const shown = new Set([...monitoring.matchAll(/"(broker\.[a-z_.]+)"/g)].map((m) => m[1]!));
    expect(recorded.size).toBe(7);
    expect([...shown].sort()).toEqual([...recorded].sort());
  });

  it('is deployed with the broker, scoped to its Application Insights', async () => {
    const broker = await read('infra/app/broker.bicep');
    expect(broker).toMatch(/module monitoring 'monitoring\.bicep' = \{[\s\S]*?insightsId: insights\.id/);
    const parameters = JSON.parse(await read('infra/main.parameters.json')) as { parameters: Record<string, { value: string }> };
    expect(parameters.parameters.alertEmail?.value).toBe('${ALERT_EMAIL=}');
  });
});
