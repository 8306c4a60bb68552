import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { startBrokerProxy } from '../support/brokerProxy.js';
import { runCli } from '../support/cli.js';
import { AUDIENCE, startHarness, type Harness } from '../support/harness.js';
import { e2eAvailable } from '../support/skopeo.js';

/**
 * The operator's CLI against the sandbox. DefaultAzureCredential picks the admin's managed identity
 * from the IMDS stand-in (AZURE_CLIENT_ID), as it would in automation.
 */
describe.skipIf(!e2eAvailable())('registry-broker admin', () => {
  let h: Harness;
  let workload: ManagedIdentity;
  let adminEnv: Record<string, string>;
  let common: string[];

  beforeAll(async () => {
    h = await startHarness();
    workload = h.sandbox.identity('cli-workload');
    adminEnv = { AZURE_POD_IDENTITY_AUTHORITY_HOST: h.sandbox.entra.url, AZURE_CLIENT_ID: h.admin.clientId };
    common = ['--broker', `${h.sandbox.broker.url}/api`, '--audience', AUDIENCE];
  });
  afterAll(() => h?.close());

  const admin = (args: string[]) => runCli(['admin', ...args, ...common], adminEnv);

  it('adds, lists and removes a grant', async () => {
    const added = await admin([
      'grants', 'add', '--id', 'cli-web', '--registry', h.sandbox.registry.host, '--repository', 'acme/web', '--action', 'pull',
      '--object-id', workload.objectId, '--description', 'added from the CLI',
    ]);
    expect(added.stderr).toContain('created grant cli-web');
    expect(added.code).toBe(0);

    const listed = await admin(['grants', 'list']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^ID\s+REGISTRY\s+REPOSITORIES\s+ACTIONS/m);
    expect(listed.stdout).toMatch(new RegExp(`cli-web\\s+${h.sandbox.registry.host.replaceAll('.', '\\.')}\\s+acme/web\\s+pull`));

    const updated = await admin(['grants', 'update', 'cli-web', '--action', 'pull', '--action', 'push']);
    expect(updated.code).toBe(0);
    expect(JSON.parse(updated.stdout)).toMatchObject({ id: 'cli-web', actions: ['pull', 'push'], description: 'added from the CLI' });
  });

  it('prints the issuance a preceding `registry-broker token` call produced', async () => {
    const token = await runCli(
      ['token', ...common, '--registry', h.sandbox.registry.host, '--scope', 'repository:acme/web:pull,push', '--client-id', workload.clientId, '--json'],
      { AZURE_POD_IDENTITY_AUTHORITY_HOST: h.sandbox.entra.url },
    );
    expect(token.code).toBe(0);
    const { issuanceId } = JSON.parse(token.stdout) as { issuanceId: string };

    const table = await admin(['issuances', '--since', '1h', '--object-id', workload.objectId]);
    expect(table.code).toBe(0);
    const line = table.stdout.split('\n').find((l) => l.includes(issuanceId));
    expect(line).toMatch(/issued\s+issued\s+/);
    expect(line).toContain('repository:acme/web:pull,push');

    const json = await admin(['issuances', '--since', '1h', '--outcome', 'issued', '--json']);
    expect((JSON.parse(json.stdout) as { issuances: { issuanceId: string }[] }).issuances.map((i) => i.issuanceId)).toContain(issuanceId);
    expect(json.stdout).not.toContain((JSON.parse(token.stdout) as { token: string }).token);
  });

  it('explain: per action the grant that allows it, or why each grant does not; --request-id replays a 403', async () => {
    const host = h.sandbox.registry.host;
    const table = await admin(['explain', '--object-id', workload.objectId, '--registry', host, '--scope', 'repository:acme/web:pull,delete']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^REPOSITORY\s+ACTION\s+ALLOWED\s+WHY$/m);
    expect(table.stdout).toMatch(/^acme\/web\s+pull\s+yes\s+grant cli-web/m);
    expect(table.stdout).toMatch(/^acme\/web\s+delete\s+no\s+cli-web: action$/m);

    const denied = await runCli(['token', ...common, '--registry', host, '--scope', 'repository:acme/web:delete', '--client-id', workload.clientId], {
      AZURE_POD_IDENTITY_AUTHORITY_HOST: h.sandbox.entra.url,
    });
    expect(denied.code).toBe(1);
    const requestId = /\(requestId (\S+)\)\n$/.exec(denied.stderr)?.[1];
    expect(requestId).toBeDefined();
    const replay = await admin(['explain', '--request-id', requestId!]);
    expect(replay.code).toBe(0);
    expect(replay.stdout).toMatch(new RegExp(`^request ${requestId} at \\S+: denied`));
    expect(replay.stdout).toMatch(/^acme\/web\s+delete\s+no\s+cli-web: action$/m);
  });

  it('explain with one of the two IDs says that grants naming the other were not checked', async () => {
    const host = h.sandbox.registry.host;
    const byApp = await admin(['grants', 'add', '--id', 'cli-by-app', '--registry', host, '--repository', 'acme/by-app', '--action', 'pull', '--app-id', workload.clientId]);
    expect(byApp.code).toBe(0);
    const half = await admin(['explain', '--object-id', workload.objectId, '--registry', host, '--scope', 'repository:acme/by-app:pull']);
    expect(half.stdout).toMatch(/^acme\/by-app\s+pull\s+no\s+.*cli-by-app: subject/m);
    expect(half.stdout).toMatch(/^cli-by-app names subjects by client \(app\) ID, which this question did not give: add --app-id to check it$/m);
    const whole = await admin(['explain', '--object-id', workload.objectId, '--app-id', workload.clientId, '--registry', host, '--scope', 'repository:acme/by-app:pull']);
    expect(whole.stdout).toMatch(/^acme\/by-app\s+pull\s+yes\s+grant cli-by-app/m);
    expect(whole.stdout).not.toMatch(/which this question did not give/);
    expect((await admin(['grants', 'rm', 'cli-by-app'])).code).toBe(0);
  });

  it('without an identity the hint names what selects one for admin commands', async () => {
    const result = await runCli(['admin', 'grants', 'list', ...common], { AZURE_POD_IDENTITY_AUTHORITY_HOST: 'http://127.0.0.1:9', AZURE_CLIENT_ID: h.admin.clientId });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/no managed-identity token .*\(run where a managed identity is available; az login, or AZURE_CLIENT_ID for a user-assigned managed identity\)$/m);
  });

  it('blocks and unblocks, and the audit shows it', async () => {
    expect((await admin(['block', workload.objectId, '--reason', 'testing the CLI'])).code).toBe(0);
    const denied = await runCli(['token', ...common, '--registry', h.sandbox.registry.host, '--scope', 'repository:acme/web:pull', '--client-id', workload.clientId], {
      AZURE_POD_IDENTITY_AUTHORITY_HOST: h.sandbox.entra.url,
    });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/403.*is blocked by an operator/);
    expect((await admin(['unblock', workload.objectId])).code).toBe(0);
    const audit = await admin(['audit', '--since', '1h']);
    expect(audit.stdout).toMatch(/block\.put\s+\S+\s+requested/);
    expect(audit.stdout).toMatch(/block\.delete\s+\S+\s+requested/);
  });

  it('issuances and audit --since 7d read every page to the end of the range, not just the first', async () => {
    const proxy = await startBrokerProxy(h.sandbox.broker.url);
    try {
      const viaProxy = (args: string[]) => runCli(['admin', ...args, '--broker', `${proxy.url}/api`, '--audience', AUDIENCE, '--json'], adminEnv);
      for (const [command, key] of [
        ['issuances', 'issuances'],
        ['audit', 'entries'],
      ] as const) {
        const result = await viaProxy([command, '--since', '7d']);
        expect(result.code).toBe(0);
        const pages = proxy.exchanges.filter((e) => e.path.startsWith(`/api/v1/admin/${command}?`));
        proxy.exchanges.length = 0;
        // The issuance search stops a page after 48 hour buckets, so seven days take several pages.
        if (command === 'issuances') expect(pages.length).toBeGreaterThan(1);
        const query = pages.map((page) => new URL(page.path, proxy.url).searchParams);
        pages.forEach((_page, i) => {
          expect(query[i]!.get('from')).toBe(query[0]!.get('from'));
          expect(query[i]!.get('to')).toBe(query[0]!.get('to'));
          if (i > 0) expect(query[i]!.get('cursor')).toBe((pages[i - 1]!.body as { nextCursor: string }).nextCursor);
        });
        expect(pages.at(-1)!.body).not.toHaveProperty('nextCursor');
        const rows = pages.flatMap((page) => (page.body as Record<string, unknown[]>)[key]!);
        expect(rows.length).toBeGreaterThan(0);
        expect((JSON.parse(result.stdout) as Record<string, unknown[]>)[key]).toEqual(rows);
      }
    } finally {
      await proxy.close();
    }
  });

  it('removes the grant', async () => {
    const removed = await admin(['grants', 'rm', 'cli-web']);
    expect(removed.code).toBe(0);
    expect((await admin(['grants', 'list'])).stdout).not.toContain('cli-web');
  });

  it('shows credentials and refuses a rotation the registry has no policy for', async () => {
    const credentials = await admin(['credentials']);
    expect(credentials.code).toBe(0);
    expect(credentials.stdout).toContain(h.sandbox.registry.host);
    const rotate = await admin(['rotate', h.sandbox.registry.host]);
    expect(rotate.code).toBe(1);
    expect(rotate.stderr).toMatch(/409/);
  });
});
