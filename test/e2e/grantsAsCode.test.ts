import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { ManagedIdentity } from '../../src/sandbox/entraId.js';
import { startBrokerProxy, type BrokerProxy } from '../support/brokerProxy.js';
import { bundledCli, OLDEST_NODE, runCli } from '../support/cli.js';
import { AUDIENCE, startHarness, type Harness } from '../support/harness.js';
import { e2eAvailable } from '../support/skopeo.js';

/**
 * Grants as code against the sandbox broker: export, lint, plan and apply (with --prune), one
 * admin-audited change per grant, and a stop with a clear message at the first conflict — a
 * second operator's change raced in by a proxy just before the CLI's write reaches the broker.
 */
describe.skipIf(!e2eAvailable())('registry-broker admin grants as code', () => {
  let h: Harness;
  let proxy: BrokerProxy;
  let bundle: string;
  let dir: string;
  let workload: ManagedIdentity;
  let adminEnv: Record<string, string>;
  let registry: string;

  beforeAll(async () => {
    [h, bundle] = await Promise.all([startHarness(), bundledCli()]);
    proxy = await startBrokerProxy(h.sandbox.broker.url);
    dir = await mkdtemp(join(tmpdir(), 'registry-broker-grants-'));
    workload = h.sandbox.identity('gac-workload');
    registry = h.sandbox.registry.host;
    adminEnv = { AZURE_POD_IDENTITY_AUTHORITY_HOST: h.sandbox.entra.url, AZURE_CLIENT_ID: h.admin.clientId };
  });
  afterAll(async () => {
    await proxy?.close();
    await h?.close();
  });

  const admin = (args: string[]) => runCli(['admin', ...args, '--broker', `${proxy.url}/api`, '--audience', AUDIENCE], adminEnv, { program: [OLDEST_NODE, bundle] });
  const offline = (args: string[]) => runCli(['admin', ...args], {}, { program: [OLDEST_NODE, bundle] });
  const grantOf = (id: string, fields: Record<string, unknown> = {}) => ({ id, registry, subjects: [{ objectId: workload.objectId }], repositories: [`acme/${id}`], actions: ['pull'], ...fields });
  const file = async (name: string, grants: unknown[]) => {
    const path = join(dir, name);
    await writeFile(path, stringify({ grants }));
    return path;
  };
  const api = async (path: string, init: RequestInit = {}) =>
    fetch(`${h.sandbox.broker.url}/api${path}`, { ...init, headers: { Authorization: `Bearer ${await h.tokenFor(h.admin)}`, 'Content-Type': 'application/json', ...init.headers } });
  const brokerGrants = async () => ((await (await api('/v1/admin/grants')).json()) as { grants: { id: string; actions: string[]; description?: string }[] }).grants;
  const grantActions = async () => ((await (await api(`/v1/admin/audit?from=${encodeURIComponent(new Date(Date.now() - 3600_000).toISOString())}`)).json()) as { entries: { action: string; target: string }[] }).entries.filter((e) => e.action.startsWith('grant.'));
  /** What another operator does: read the ETag, write with If-Match. */
  const editDirectly = async (id: string, change: Record<string, unknown>) => {
    const current = await api(`/v1/admin/grants/${id}`);
    const updated = await api(`/v1/admin/grants/${id}`, { method: 'PUT', body: JSON.stringify({ ...((await current.json()) as object), ...change }), headers: { 'If-Match': current.headers.get('etag')! } });
    expect(updated.status).toBe(200);
  };

  it('exports the broker\'s grants as a file that lints clean, offline and against the catalog', async () => {
    await h.grant(grantOf('keep-me'));
    await h.grant(grantOf('change-me', { description: 'from the API' }));
    const exported = await admin(['grants', 'export']);
    expect(exported).toMatchObject({ code: 0, stderr: '' });
    const { grants } = parse(exported.stdout) as { grants: { id: string }[] };
    expect(grants.map((g) => g.id)).toEqual(['change-me', 'keep-me']);
    expect(grants[0]).toEqual({ id: 'change-me', description: 'from the API', subjects: [{ objectId: workload.objectId }], registry, repositories: ['acme/change-me'], actions: ['pull'], enabled: true });
    const path = join(dir, 'exported.yaml');
    await writeFile(path, exported.stdout);
    expect(await offline(['grants', 'lint', '-f', path])).toMatchObject({ code: 0, stdout: `${path}: 2 grants, no problems\n` });
    expect((await admin(['grants', 'lint', '-f', path])).code).toBe(0);
  });

  it('lint --broker also catches a registry the broker does not serve; apply refuses such a file and changes nothing', async () => {
    const path = await file('unknown-registry.yaml', [grantOf('elsewhere', { registry: 'quay.io' })]);
    expect((await offline(['grants', 'lint', '-f', path])).code).toBe(0);
    const linted = await admin(['grants', 'lint', '-f', path]);
    expect(linted.code).toBe(1);
    expect(linted.stderr).toMatch(new RegExp(`^${path}:3: grants\\[0\\]\\.registry: registry "quay\\.io" is not in the broker's catalog \\(.*${registry.replaceAll('.', '\\.')}.*\\)\n`));
    expect(linted.stderr).toMatch(/1 problem\n$/);
    const before = proxy.exchanges.length;
    expect((await admin(['grants', 'apply', '-f', path])).code).toBe(1);
    expect(proxy.exchanges.slice(before).map((e) => e.method)).toEqual(['GET']);
  });

  it('plan shows creates, updates with their fields, and what --prune would delete — and changes nothing', async () => {
    const path = await file('grants.yaml', [grantOf('change-me', { description: 'from the API', actions: ['pull', 'push'] }), grantOf('new-one')]);
    const auditBefore = (await grantActions()).length;
    const plan = await admin(['grants', 'plan', '-f', path]);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toBe(
      ['~ update change-me', '    actions: ["pull"] → ["pull","push"]', '+ create new-one', '  (not in the file, kept; --prune deletes them: keep-me)', 'plan: 1 to create, 1 to update, 0 to delete', ''].join('\n'),
    );
    expect((await admin(['grants', 'plan', '-f', path, '--prune'])).stdout).toMatch(/- delete keep-me\nplan: 1 to create, 1 to update, 1 to delete\n$/);
    expect((await grantActions()).length).toBe(auditBefore);
    expect((await brokerGrants()).map((g) => g.id).sort()).toEqual(['change-me', 'keep-me']);
  });

  it('apply makes it so, one admin-audited change per grant, with If-Match; --prune deletes the rest', async () => {
    const path = join(dir, 'grants.yaml');
    const auditBefore = (await grantActions()).length;
    const before = proxy.exchanges.length;
    const applied = await admin(['grants', 'apply', '-f', path]);
    expect(applied.code).toBe(0);
    expect(applied.stdout).toMatch(/updated change-me\ncreated new-one\napplied 2 changes\n$/);
    const writes = proxy.exchanges.slice(before).filter((e) => e.method !== 'GET');
    expect(writes.map((e) => `${e.method} ${e.status}`)).toEqual(['PUT 200', 'POST 201']);
    const grants = await brokerGrants();
    expect(grants.find((g) => g.id === 'change-me')!.actions).toEqual(['pull', 'push']);
    expect(grants.map((g) => g.id).sort()).toEqual(['change-me', 'keep-me', 'new-one']);
    expect((await grantActions()).slice(0, (await grantActions()).length - auditBefore).map((e) => `${e.action} ${e.target}`).sort()).toEqual(['grant.create new-one', 'grant.update change-me']);

    expect((await admin(['grants', 'plan', '-f', path])).stdout).toMatch(/plan: 0 to create, 0 to update, 0 to delete\n$/);
    const pruned = await admin(['grants', 'apply', '-f', path, '--prune']);
    expect(pruned.code).toBe(0);
    expect(pruned.stdout).toMatch(/deleted keep-me\napplied 1 change\n$/);
    expect((await brokerGrants()).map((g) => g.id).sort()).toEqual(['change-me', 'new-one']);
    expect((await grantActions())[0]).toMatchObject({ action: 'grant.delete', target: 'keep-me' });
  });

  it('stops at the first conflict: a grant changed since the plan (412) is named, nothing after it is tried', async () => {
    const path = await file('conflict.yaml', [grantOf('change-me', { actions: ['pull'] }), grantOf('new-one', { actions: ['pull', 'push'] })]);
    proxy.interpose((method, url) => method === 'PUT' && url.endsWith('/grants/change-me'), () => editDirectly('change-me', { description: 'changed by someone else' }));
    const applied = await admin(['grants', 'apply', '-f', path]);
    expect(applied.code).toBe(1);
    expect(applied.stderr).toBe(
      'registry-broker: conflict: grant "change-me" was changed on the broker after the plan was made (its ETag no longer matches); stopped (0 of 2 changes applied, 2 not tried). Run plan again to see the broker\'s grants now.\n',
    );
    const grants = await brokerGrants();
    expect(grants.find((g) => g.id === 'change-me')).toMatchObject({ description: 'changed by someone else', actions: ['pull', 'push'] });
    expect(grants.find((g) => g.id === 'new-one')!.actions).toEqual(['pull']);
  });

  it('stops at the first conflict: a grant created since the plan (409), keeping what was applied before it', async () => {
    const path = await file('conflict-create.yaml', [grantOf('change-me', { description: 'changed by someone else', actions: ['pull', 'push'] }), grantOf('new-one'), grantOf('first'), grantOf('raced'), grantOf('never')]);
    proxy.interpose(
      (method, url) => method === 'POST' && url.endsWith('/v1/admin/grants') && proxy.exchanges.at(-1)?.method === 'POST',
      async () => void (await api('/v1/admin/grants', { method: 'POST', body: JSON.stringify(grantOf('raced', { description: 'created by someone else' })) })),
    );
    const applied = await admin(['grants', 'apply', '-f', path]);
    expect(applied.code).toBe(1);
    expect(applied.stdout).toMatch(/created first\n$/);
    expect(applied.stderr).toMatch(/^registry-broker: conflict: grant "raced" was created on the broker after the plan was made; stopped \(1 of 3 changes applied, 2 not tried\)/);
    const ids = (await brokerGrants()).map((g) => g.id);
    expect(ids).toContain('first');
    expect(ids).not.toContain('never');
  });
});
